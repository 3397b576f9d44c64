"""``python -m hepablate.schemas --out docs/schemas``: write the outputs' JSON Schemas."""

from __future__ import annotations

import argparse
from pathlib import Path

from hepablate.schemas import write_json_schemas


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hepablate.schemas", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="The folder to write into.")
    for path in write_json_schemas(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
