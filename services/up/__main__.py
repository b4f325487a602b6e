"""`python -m services.up`: what `make up` runs."""

from . import main

main()
