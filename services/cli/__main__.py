"""`python -m services.cli`: the `factory5g` program."""

from services.cli import main

main()
