"""User-facing errors: one line naming the bad value and what was expected."""


class TfnasError(ValueError):
  """An error caused by user input (config, arch, dataset, workdir).

  Binaries catch it and print its message as a single line instead of a
  traceback; library callers can catch it like any ValueError.
  """
