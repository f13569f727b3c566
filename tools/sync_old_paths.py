"""Write `OLD_PATHS` in nbs/15_learner.folder.ipynb from the table of moves (`NAME<TAB>old.module<TAB>new.module`).

    python tools/sync_old_paths.py [/work/plan/moves.tsv]

`OLD_PATHS` is how `read_learner` finds the classes and functions that model folders written before the move pickled
under their old modules (`lesion_fastai.train.ComboLoss` → `lesion_fastai.seg.recipe.ComboLoss`). A note after the new
module saying `renamed NEW` becomes `old=NEW`; a name `*` moves the whole module. Names that did not move are left out."""
import json, re, sys, textwrap
from collections import defaultdict
from pathlib import Path

NB = Path(__file__).resolve().parents[1]/'nbs'/'15_learner.folder.ipynb'
HEAD = '#| export\nOLD_PATHS = moves_table("""\n'
TAIL = '""")\n"Where each name of the library\'s old modules lives now: `{(old module, name): new module}`."'

def read_moves(path)->dict:
    "{(old, new): [names]} of the table, each name once (its last line wins)"
    last = {}
    for line in Path(path).read_text().splitlines():
        parts = [p.strip() for p in line.split('\t')]
        if len(parts) != 3 or line.startswith('#') or parts[0] == 'NAME': continue
        name, old, new = (p.removeprefix('lesion_fastai.') for p in parts)
        new, _, note = new.partition(' ')                    # `cls.crop (renamed with_full)`: a note after the module
        if (renamed := re.search(r'(?:renamed|as) (\w+)', note)): name = f'{name}={renamed[1]}'
        if old != new or '=' in name: last[(old, name)] = new
    pairs = defaultdict(list)
    for (old, name), new in sorted(last.items()): pairs[(old, new)].append(name)
    return pairs

def cell_text(pairs:dict)->str:
    "The source of the `OLD_PATHS` cell: one `old new: names` line per module pair, wrapped at 116 characters"
    lines = []
    for (old, new), names in sorted(pairs.items()):
        lines += textwrap.wrap(f"{old} {new}: {' '.join(names)}", 116, subsequent_indent=f"{old} {new}: ",
                               break_long_words=False, break_on_hyphens=False)
    return HEAD + '\n'.join(lines) + '\n' + TAIL

def main(moves='/work/plan/moves.tsv'):
    nb = json.loads(NB.read_text())
    cell = next(c for c in nb['cells'] if ''.join(c['source']).startswith(HEAD))
    src = cell_text(read_moves(moves))
    cell['source'] = [l + '\n' for l in src.split('\n')]
    cell['source'][-1] = cell['source'][-1].rstrip('\n')
    NB.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    print(f"{NB.name}: OLD_PATHS from {moves}: {sum(map(len, read_moves(moves).values()))} names")

if __name__ == '__main__': main(*sys.argv[1:])
