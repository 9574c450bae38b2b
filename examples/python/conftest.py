import pathlib
import sys

# The examples import a few helpers of their own (packets.py) next to them.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
