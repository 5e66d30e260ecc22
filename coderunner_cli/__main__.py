"""`python -m coderunner_cli`: the `coderunner` command."""

from coderunner_cli._fast import main

main()
