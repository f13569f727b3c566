"""Cell-level edits of a notebook, each one a locked read-modify-write, so that several people can edit one notebook.

    python tools/nbcell.py list NB                  # index, id, type, first line of every cell
    python tools/nbcell.py find NB TEXT             # cells whose source contains TEXT
    python tools/nbcell.py get NB ID                # the source of one cell
    python tools/nbcell.py set NB ID [FILE]         # replace a cell's source (FILE or stdin)
    python tools/nbcell.py insert NB AFTER [FILE] [--md]   # new cell after cell AFTER ('top' for first); prints its id
    python tools/nbcell.py delete NB ID

A notebook is never held open across edits: every command reads the file, changes it and writes it back under an
exclusive lock, so two people editing different cells of one notebook never lose each other's work.
"""
import fcntl, json, os, sys, uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(nb: Path, write=True):
    "Yield the notebook's JSON under an exclusive lock; write it back atomically when `write`"
    with open(str(nb) + '.lock', 'w') as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        d = json.loads(nb.read_text())
        yield d
        if write:
            tmp = nb.with_name(nb.name + '.tmp')
            tmp.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n')
            os.replace(tmp, nb)


def lines(src: str) -> list:
    "Source as the notebook's list of lines"
    return src.splitlines(keepends=True)


def index_of(cells, cid):
    "Index of the cell with id `cid`"
    for i, c in enumerate(cells):
        if c.get('id') == cid: return i
    sys.exit(f"no cell with id {cid!r}")


def new_cell(src, md=False):
    "A fresh code (or markdown) cell"
    c = dict(cell_type='markdown' if md else 'code', id=uuid.uuid4().hex[:8], metadata={}, source=lines(src))
    if not md: c.update(execution_count=None, outputs=[])
    return c


def read_src(args):
    "Source from a file argument or stdin"
    f = next((a for a in args if not a.startswith('--')), None)
    return Path(f).read_text() if f else sys.stdin.read()


def main(cmd, nb, *args):
    nb = Path(nb)
    if cmd in ('list', 'find', 'get'):
        with locked(nb, write=False) as d: cells = d['cells']
        if cmd == 'get': return print(''.join(cells[index_of(cells, args[0])]['source']), end='')
        for i, c in enumerate(cells):
            src = ''.join(c['source'])
            if cmd == 'find' and args[0] not in src: continue
            first = next((l for l in src.splitlines() if l.strip()), '')[:100]
            print(f"{i:3d} {c.get('id')} {c['cell_type'][:4]:4s} {first}")
        return
    with locked(nb) as d:
        cells = d['cells']
        if cmd == 'set':
            cells[index_of(cells, args[0])]['source'] = lines(read_src(args[1:]).rstrip('\n'))
        elif cmd == 'insert':
            c = new_cell(read_src(args[1:]).rstrip('\n'), md='--md' in args)
            cells.insert(0 if args[0] == 'top' else index_of(cells, args[0]) + 1, c)
            print(c['id'])
        elif cmd == 'delete':
            del cells[index_of(cells, args[0])]
        else: sys.exit(__doc__)


if __name__ == '__main__':
    if len(sys.argv) < 3: sys.exit(__doc__)
    main(*sys.argv[1:])
