"""Command-line tools: `python -m gan_zoo.tools.<name>`."""
