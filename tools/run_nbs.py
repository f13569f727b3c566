"""Execute notebooks in place and keep their outputs, so the docs site shows tables and plots.
Cells flagged with a `tst_flags` flag (`slow`) are skipped unless named with --flags, exactly as nbdev_test does.
Usage: python tools/run_nbs.py [--flags slow] [NOTEBOOK ...]   (default: every notebook in nbs/); then run nbdev_clean."""
import argparse, os, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from nbdev.config import get_config
from nbdev.process import NBProcessor
from nbdev.test import _keep_file

def run_nb(path:Path, flags:set):
    "Execute `path` with its outputs stored; cells with a skipped flag keep no output"
    skip = set(get_config().tst_flags.split()) - flags
    nb = NBProcessor(path, process=True).nb
    def _no_eval(cell):
        if cell.cell_type != 'code': return True
        d = getattr(cell, 'directives_', {}) or {}
        return d.get('eval:', [''])[0].lower() == 'false' or bool(skip & d.keys())
    raw = read_nb(path)
    sh = CaptureShell(path)
    cwd = os.getcwd(); os.chdir(path.parent)
    try: sh.run_all(nb, exc_stop=True, preproc=_no_eval)
    finally: os.chdir(cwd)
    for src, done in zip(raw.cells, nb.cells):          # copy outputs onto the unprocessed cells
        if src.cell_type == 'code': src.outputs, src.execution_count = done.get('outputs', []), None
    write_nb(raw, path)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--flags', default='', help='space-separated test flags to run too (e.g. slow)')
    p.add_argument('nbs', nargs='*')
    a = p.parse_args()
    cfg = get_config()
    files = [Path(f).resolve() for f in a.nbs] or sorted(f for f in cfg.nbs_path.glob('*.ipynb') if not f.name.startswith('_'))
    for f in files:
        print(f"running {f.name}", flush=True)
        run_nb(f, set(a.flags.split()))
