"""Classes for CPython's ``test.test_interpreters`` (see ``_code_definitions``).

Written for this project in place of the module the shared CPython builds do not
ship. ``TOP_CLASSES`` maps each module-level class to the arguments that make
an instance; the classes in ``CLASSES_WITHOUT_EQUALITY`` compare by identity.
"""

from test._code_definitions import *  # noqa: F403  (the suite reads both through this module)


class Spam:
    pass


class SpamWithMethod:
    def okay(self):
        return True


class SpamWithState:
    def __init__(self, a, b, c):
        self.a, self.b, self.c = a, b, c

    def __eq__(self, other):
        if not isinstance(other, SpamWithState):
            return NotImplemented
        return (self.a, self.b, self.c) == (other.a, other.b, other.c)

    __hash__ = None


class SubSpamWithState(SpamWithState):
    pass


class SubTuple(tuple):
    pass


TOP_CLASSES = {
    Spam: (),
    SpamWithMethod: (),
    SpamWithState: (1, 2, 3),
    SubSpamWithState: (1, 2, 3),
    SubTuple: ([1, 2, 3],),
}
CLASSES_WITHOUT_EQUALITY = [Spam, SpamWithMethod]
