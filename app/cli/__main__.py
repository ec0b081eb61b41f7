"""`python -m app.cli ...`: the same as `hookyard ...`."""

from app.cli.main import main

main()
