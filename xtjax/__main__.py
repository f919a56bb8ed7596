import sys

from xtjax.cli.main import main

sys.exit(main())
