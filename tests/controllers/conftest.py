"""Puts this directory on sys.path (pytest's prepend import mode) so that the tests below it
can import `controller_samples`."""
