"""``python -m imgret`` runs the command-line interface."""

from imgret.cli import main

if __name__ == "__main__":
    main()
