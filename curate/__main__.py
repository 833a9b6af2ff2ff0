"""`python -m curate`: the form `ray job submit -- python -m curate run ...` needs."""

from curate.cli import main

if __name__ == "__main__":
    main()
