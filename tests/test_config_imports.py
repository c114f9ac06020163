"""Reading a config needs no torch: config.py and the schema modules it reads depend on nothing heavy."""

import subprocess
import sys


def test_loading_every_preset_imports_neither_torch_nor_a_network():
    code = ("import sys; from stprivacy.config import load_experiment; "
            "[load_experiment(p) for p in ('synth-quick', 'vp-ucf101', 'tiny')]; "
            "heavy = [m for m in sys.modules if m == 'torch' or m.startswith(('stprivacy.training', "
            "'stprivacy.models.anonymizer', 'stprivacy.data.real'))]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
