"""Print the run-time requirements of the chaosbed project, one per line (from pyproject.toml)."""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path(sys.argv[1]).read_text())["project"]
print("\n".join(project["dependencies"]))
