"""`python -m shoal.differ`: the differ process (see `shoal.differ.main`)."""

from shoal.differ.main import main

if __name__ == "__main__":
    main()
