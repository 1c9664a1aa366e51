import sys

from torchlnn.cli import main

sys.exit(main())
