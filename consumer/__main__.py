"""`python -m consumer …` is the same as the `invoicer` console script."""

from consumer.cli import main

raise SystemExit(main())
