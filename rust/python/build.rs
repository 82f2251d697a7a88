fn main() {
    // Emits Py_3_12 / Py_3_13 / Py_3_14 cfgs for the interpreter being built against.
    pyo3_build_config::use_pyo3_cfgs();
}
