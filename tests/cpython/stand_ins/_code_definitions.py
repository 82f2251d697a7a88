"""Functions for CPython's ``test.test_interpreters``, written for this project.

The suite imports ``test._crossinterp_definitions`` (which star-imports
``test._code_definitions``). The CPython builds in ``../shared/python`` ship
only ``test/support``, ``test/libregrtest`` and ``test/test_interpreters``, so
the runner puts this module and its sibling in place of the missing two. Only
the names the suite uses are defined, each with the property the suite relies
on: "stateless" functions use no globals and no closure, "top" functions live
at module level (picklable by reference), "nested" ones do not.
"""


def script_with_return():
    return True


def spam_minimal():
    return


def spam_returns_arg(x):
    return x


def spam_raises():
    raise Exception("spam!")


def spam_full_args(a, b, /, c, d, *args, e, f, **kwargs):
    return (a, b, c, d, e, f, args, kwargs)


def spam_full_args_with_defaults(a=-1, b=-2, /, c=-3, d=-4, *args, e=-5, f=-6, **kwargs):
    return (a, b, c, d, e, f, args, kwargs)


def spam_with_builtins():
    return len((1, 2)), tuple(range(3))


def spam_uses_global():
    # Reads a module global, so it is not stateless.
    return spam_returns_arg(1)


def make_inner():
    def inner(y):
        return y

    return inner


def make_closure():
    captured = 1

    def closure(y):
        return y, captured

    return closure


def make_closure_of_closure():
    outer = 1

    def middle():
        inner = 2

        def innermost():
            return outer, inner

        return innermost

    return middle()


inner = make_inner()
closure = make_closure()
closure_of_closure = make_closure_of_closure()

TOP_FUNCTIONS = [
    script_with_return,
    spam_minimal,
    spam_returns_arg,
    spam_raises,
    spam_full_args,
    spam_full_args_with_defaults,
    spam_with_builtins,
    spam_uses_global,
    make_inner,
    make_closure,
    make_closure_of_closure,
]
NESTED_FUNCTIONS = [inner, closure, closure_of_closure]
FUNCTIONS = [*TOP_FUNCTIONS, *NESTED_FUNCTIONS]
# No globals (builtins are fine), no closure. Defaults make a function stateful.
STATELESS_FUNCTIONS = [
    script_with_return,
    spam_minimal,
    spam_returns_arg,
    spam_raises,
    spam_full_args,
    spam_with_builtins,
    make_inner,
    make_closure,
    make_closure_of_closure,
    inner,
]
