import sys

from fmnist.cli import main

sys.exit(main())
