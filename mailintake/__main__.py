import sys

from mailintake.cli import main

sys.exit(main())
