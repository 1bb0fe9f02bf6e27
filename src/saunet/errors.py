"""The one error type for bad input: the command line prints its message on one line and exits 2."""


class InputError(Exception):
    """Bad user input; the message names the file and the problem."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
