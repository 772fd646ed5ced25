"""Run the command line with `python -m wp_llm`."""

from wp_llm.cli import main

main()
