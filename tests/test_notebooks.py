"Every notebook in nbs/ is a test: run each one as `nbdev_test` does (cells flagged `slow` are skipped)."
import os, subprocess, sys, tempfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_'))

@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    "The notebook runs top to bottom without error (its test_eq/test_close/test_fail cells included)"
    exe = Path(sys.executable).with_name('nbdev_test')
    with tempfile.TemporaryDirectory(prefix=f'{nb.stem}-') as tmp:          # the notebook's temporary folders go with it
        res = subprocess.run([str(exe), '--path', str(nb.relative_to(ROOT)), '--n_workers', '0'],
                             cwd=ROOT, capture_output=True, text=True, env={**os.environ, 'TMPDIR': tmp})
    assert res.returncode == 0, f"{nb.name} failed:\n{res.stderr[-6000:]}\n{res.stdout[-2000:]}"
