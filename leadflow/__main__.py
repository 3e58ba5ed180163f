"""`python -m leadflow`: the same command line as the `leadflow` console script."""

from leadflow.pipeline.cli import main

raise SystemExit(main())
