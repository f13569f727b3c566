"""Measure a package against the house style: how dense, packed and wide its code is, and how its notebooks teach.

    python tools/code_shape.py                         # lesion_fastai/ and nbs/ of this checkout
    python tools/code_shape.py --check                 # the same; exit 1 when a must-hold limit is broken
    python tools/code_shape.py --json                  # the figures as JSON
    python tools/code_shape.py --path DIR [--nbs DIR]  # another package folder (fastcore, execnb); notebooks optional

Every module of the package is read with `ast` (subpackages included, the generated `_modidx.py` left out):
- AST nodes per function: `sum(1 for _ in ast.walk(fn))` of every `def` (a nested `def` also counts on its own):
  the median, the functions over 250 nodes, the densest eight;
- sibling statements sharing a line: statements of one body (`body`, `orelse`, `finalbody`) that start on the line
  of a sibling before them (`a = 1; b = 2` is one), per 1,000 code lines (a code line is not blank, not only a comment);
- the share of code lines over 120 characters;
- functions with more than 8 parameters (positional-only, positional and keyword-only; not `self`/`cls`, not
  `*args`/`**kwargs`); CLI commands (`cli_*` in `cli.py`) and the config dataclasses are exempt;
- module sizes in code lines;
- private names imported from another module of the package, and repeated blocks (the `duplicates` tool, if on PATH).
With notebooks: the runs of exported cells (`#| export`, `#| exporti`, `#| exports`) back to back. Markdown, or a code
cell a reader sees that is not only `show_doc` (an example, a test), ends a run; `show_doc` and `#| hide` cells neither
end a run nor count in it. The limits are issue 23's must-holds; `--check` exits 1 when one of them is broken."""
import argparse, ast, json, re, shutil, statistics, subprocess, sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
SCOPES = (*DEFS, ast.ClassDef)
BODIES = ('body', 'orelse', 'finalbody')
EXPORT = re.compile(r'^\s*#\s*\|\s*export[is]?\b')
HIDE = re.compile(r'^\s*#\s*\|\s*hide\b')
PAIR = re.compile(r'^D\d+ ')
BREAKS = ('prose', 'example')
CONFIGS = ('TrainConfig', 'ClassifyConfig')
DENSE, WIDE, MANY, BIG = 250, 120, 8, 500
LIMITS = {'median_nodes': 45, 'over_250_pct': 2.0, 'shared_per_kloc': 3.0, 'wide_pct': 3.0,
          'params_over_8': 0, 'modules_over_500': 0, 'longest_run': 5, 'private_imports': 0, 'repeated_blocks': 0}
ROWS = [("AST nodes per function, median (functions over 250)",
         "{median_nodes:g} ({over_250} of {functions:,}, {over_250_pct:.1f} %)"),
        ("sibling statements sharing a line, per 1,000 code lines",
         "{shared_per_kloc:.1f} ({shared} statements on {shared_lines} of {code_lines:,} lines)"),
        ("lines over 120 characters", "{wide_pct:.1f} % ({wide_lines} of {code_lines:,})"),
        ("functions with more than 8 parameters (CLI commands and configs aside)",
         "{params_over_8} of {functions:,} ({params_over_8_cli_aside} with configs, {params_over_8_all} with both)"),
        ("longest runs of exported cells back to back", "{runs_text}"),
        ("modules over 500 code lines", "{modules_over_500} ({largest})")]
MODULE_ROW = "{module:<28} {code_lines:>10} {functions:>9} {median_nodes:>12g} {shared_per_kloc:>9.1f} {wide_pct:>7.1f}"
MODULE_HEAD = f"{'module':<28} {'code lines':>10} {'functions':>9} {'median nodes':>12} {'shared/1k':>9} {'wide %':>7}"


@dataclass
class Fn:
    "One `def`: its module, qualified name, AST nodes and parameters"
    module: str
    name: str
    nodes: int
    params: int


@dataclass
class Module:
    "One module: its code lines, the lines of statements that share one, its functions and private imports"
    name: str
    lines: list
    shared: list
    fns: list
    private: list


def module_files(pkg:Path)->list:
    "Every module file of the package, subpackages included, the generated index left out"
    return sorted(f for f in pkg.rglob('*.py') if f.name != '_modidx.py')


def dotted(f:Path, pkg:Path)->str:
    "A module's dotted name inside its package: `learner/clock.py` → `learner.clock`"
    return '.'.join(f.relative_to(pkg).with_suffix('').parts)


def is_code(line:str)->bool:
    "Whether a line holds code: not blank, not only a comment"
    s = line.strip()
    return bool(s) and not s.startswith('#')


def median(xs:list)->float:
    "The median, 0 for none"
    return statistics.median(xs) if xs else 0


def pct(n:int, d:int)->float:
    "n as a percentage of d"
    return 100 * n / d if d else 0.0


def per_kloc(n:int, d:int)->float:
    "n per 1,000 of d"
    return 10 * pct(n, d)


def n_wide(lines:list)->int:
    "Lines over 120 characters"
    return sum(1 for l in lines if len(l) > WIDE)


def n_nodes(node:ast.AST)->int:
    "AST nodes in `node`, itself included"
    return sum(1 for _ in ast.walk(node))


def n_params(fn:ast.AST)->int:
    "Named parameters of a `def`, `self` and `cls` left out (`*args` and `**kwargs` are not counted)"
    a = fn.args
    return len({p.arg for p in a.posonlyargs + a.args + a.kwonlyargs} - {'self', 'cls'})


def scope_name(node:ast.AST, prefix:str)->str:
    "The qualified name inside `node` when it is a class or a `def`, else `prefix` unchanged"
    return prefix + node.name + '.' if isinstance(node, SCOPES) else prefix


def walk_defs(node:ast.AST, prefix:str=''):
    "(qualified name, node) of every `def` below `node`, nested ones included"
    for n in ast.iter_child_nodes(node):
        inner = scope_name(n, prefix)
        if isinstance(n, DEFS):
            yield inner[:-1], n
        yield from walk_defs(n, inner)


def functions(tree:ast.AST, module:str)->list:
    "An `Fn` for every `def` of a module"
    return [Fn(module, name, n_nodes(n), n_params(n)) for name, n in walk_defs(tree)]


def bodies(node:ast.AST)->list:
    "The statement lists of a node: its body, its `else` and its `finally`"
    found = (getattr(node, f, None) for f in BODIES)
    return [b for b in found if isinstance(b, list)]


def repeats(starts:list)->list:
    "The start lines that a statement before already started on"
    return [l for i, l in enumerate(starts) if l in starts[:i]]


def shared_starts(tree:ast.AST)->list:
    "The line of every statement that starts on the line of a sibling before it, in the whole tree"
    starts = ([s.lineno for s in b if isinstance(s, ast.stmt)] for n in ast.walk(tree) for b in bodies(n))
    return sorted(l for s in starts for l in repeats(s))


def is_private(name:str)->bool:
    "A `_name`, not a `__dunder__`"
    return name.startswith('_') and not name.startswith('__')


def source(node:ast.ImportFrom)->str:
    "The module a `from … import` names, its leading dots kept"
    return '.' * node.level + (node.module or '')


def internal(node:ast.AST, pkg:str)->bool:
    "Whether a node is a `from … import` of a module of package `pkg` (relative, or by the package's name)"
    return isinstance(node, ast.ImportFrom) and source(node).startswith(('.', pkg))


def private_imports(tree:ast.AST, pkg:str)->list:
    "(imported from, name) of every private name imported from another module of the package"
    found = [n for n in ast.walk(tree) if internal(n, pkg)]
    return [(source(n), a.name) for n in found for a in n.names if is_private(a.name)]


def read_module(f:Path, pkg:Path)->Module:
    "Parse one module and take its figures"
    text = f.read_text(encoding='utf-8')
    tree = ast.parse(text)
    name = dotted(f, pkg)
    lines = [l for l in text.splitlines() if is_code(l)]
    return Module(name, lines, shared_starts(tree), functions(tree, name), private_imports(tree, pkg.name))


def repeated_blocks(pkg:Path)->list|None:
    "The `duplicates` tool's pairs of repeated blocks in the package, the generated index left out (None: no tool)"
    if not shutil.which('duplicates'):
        return None
    out = subprocess.run(['duplicates', '--repo', str(pkg), '--most', '50'], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if PAIR.match(l) and '_modidx.py' not in l]


def fns_of(mods:list)->list:
    "Every function of the modules"
    return [f for m in mods for f in m.fns]


def nodes_median(fns:list)->float:
    "The median AST nodes of the functions"
    return median([f.nodes for f in fns])


def densest(fns:list, n:int=8)->list:
    "The `n` functions with the most AST nodes"
    return sorted(fns, key=lambda f: -f.nodes)[:n]


def is_cli(fn:Fn)->bool:
    "Whether a function is a CLI command: `cli_*` in `cli.py`"
    return fn.module.split('.')[-1] == 'cli' and fn.name.startswith('cli_')


def exempt(fn:Fn)->bool:
    "CLI commands and the config dataclasses may take many parameters"
    return is_cli(fn) or fn.name.split('.')[0] in CONFIGS


def many_params(fns:list)->list:
    "The functions with more than 8 parameters, most first"
    return sorted((f for f in fns if f.params > MANY), key=lambda f: -f.params)


def is_show_doc(stmt:ast.stmt)->bool:
    "Whether a statement is a `show_doc(...)` call"
    call = getattr(stmt, 'value', None)
    return isinstance(stmt, ast.Expr) and isinstance(call, ast.Call) and getattr(call.func, 'id', '') == 'show_doc'


def only_show_doc(src:str)->bool:
    "Whether a code cell's source is nothing but `show_doc(...)` calls"
    try:
        body = ast.parse(src).body
    except SyntaxError:
        return False
    return bool(body) and all(map(is_show_doc, body))


def has(pattern:re.Pattern, lines:list)->bool:
    "Whether any line matches `pattern`"
    return any(map(pattern.match, lines))


def code_kind(lines:list)->str:
    "'export', 'hidden', 'doc' (only `show_doc`) or 'example' (code a reader sees), from a code cell's lines"
    if has(EXPORT, lines):
        return 'export'
    if has(HIDE, lines):
        return 'hidden'
    return 'doc' if only_show_doc('\n'.join(lines)) else 'example'


def cell_kind(cell:dict)->str:
    "A notebook cell's part in a run: markdown is 'prose', raw cells are 'hidden', code cells as `code_kind` says"
    if cell['cell_type'] == 'code':
        return code_kind(''.join(cell['source']).splitlines())
    return 'prose' if cell['cell_type'] == 'markdown' else 'hidden'


def export_runs(kinds:list)->list:
    "Lengths of the runs of exported cells that no prose or example breaks"
    runs = [0]
    for k in kinds:
        if k == 'export':
            runs[-1] += 1
        elif k in BREAKS:
            runs.append(0)
    return [r for r in runs if r]


def notebook_runs(nbs:Path)->dict:
    "Notebook name → lengths of its runs of exported cells"
    cells = {nb.stem: json.loads(nb.read_text(encoding='utf-8'))['cells'] for nb in sorted(nbs.glob('*.ipynb'))}
    runs = {nb: export_runs([cell_kind(c) for c in cs]) for nb, cs in cells.items()}
    return {nb: r for nb, r in runs.items() if r}


def longest_runs(runs:dict)->list:
    "(length, notebook) of the five longest runs"
    return sorted(((r, nb) for nb, rs in runs.items() for r in rs), reverse=True)[:5]


def density(fns:list)->dict:
    "Functions, their median AST nodes and those over 250"
    dense = sum(1 for f in fns if f.nodes > DENSE)
    n = len(fns)
    return {'functions': n, 'median_nodes': nodes_median(fns), 'over_250': dense, 'over_250_pct': pct(dense, n)}


def packing(mods:list)->dict:
    "Code lines, the statements sharing a line, and the lines over 120 characters"
    lines = [l for m in mods for l in m.lines]
    shared = [(m.name, l) for m in mods for l in m.shared]
    n, wide = len(lines), n_wide(lines)
    return {'code_lines': n, 'shared': len(shared), 'shared_lines': len(set(shared)),
            'shared_per_kloc': per_kloc(len(shared), n), 'wide_lines': wide, 'wide_pct': pct(wide, n)}


def signatures(fns:list)->dict:
    "Functions with more than 8 parameters: all, CLI commands aside, and those not exempt"
    many = many_params(fns)
    return {'params_over_8_all': len(many), 'params_over_8_cli_aside': len([f for f in many if not is_cli(f)]),
            'params_over_8': len([f for f in many if not exempt(f)])}


def sizes(mods:list)->dict:
    "The modules over 500 code lines, largest first"
    big = sorted((len(m.lines), m.name) for m in mods if len(m.lines) > BIG)
    return {'modules_over_500': len(big), 'largest': ', '.join(f"{n} {k}" for k, n in big[::-1]) or 'none'}


def run_figures(runs:dict)->dict:
    "The five longest runs of exported cells"
    top = [r for r, _ in longest_runs(runs)]
    return {'runs': top, 'runs_text': ', '.join(map(str, top)) or 'no notebooks', 'longest_run': max(top, default=0)}


def hygiene(mods:list, reps:list|None)->dict:
    "Private names imported across modules, repeated blocks"
    return {'private_imports': sum(len(m.private) for m in mods), 'repeated_blocks': len(reps or [])}


def summary(mods:list, runs:dict, reps:list|None=None)->dict:
    "The issue's figures for the whole package"
    fns = fns_of(mods)
    return density(fns) | packing(mods) | signatures(fns) | sizes(mods) | run_figures(runs) | hygiene(mods, reps)


def verdicts(s:dict, skip=())->dict:
    "Each must-hold limit, those in `skip` left out → whether it holds"
    return {k: s[k] <= v for k, v in LIMITS.items() if k not in skip}


def module_figures(m:Module)->dict:
    "One module's row: code lines, functions, median AST nodes, shared statements per 1,000 lines, wide lines"
    n = len(m.lines)
    return {'module': m.name, 'code_lines': n, 'functions': len(m.fns), 'median_nodes': nodes_median(m.fns),
            'shared_per_kloc': per_kloc(len(m.shared), n), 'wide_pct': pct(n_wide(m.lines), n)}


def module_row(d:dict)->str:
    "A module's line of the size table, flagged when over 500 code lines"
    return MODULE_ROW.format(**d) + (f'  over {BIG}' if d['code_lines'] > BIG else '')


def table(name:str, s:dict)->list:
    "The issue's table for one package"
    return [f"| | {name} |", "|---|---|"] + [f"| {label} | {value.format(**s)} |" for label, value in ROWS]


def dense_rows(fns:list)->list:
    "The eight densest functions"
    return ['densest functions (AST nodes):'] + [f"  {f.module}.{f.name}: {f.nodes}" for f in densest(fns)]


def params_rows(fns:list)->list:
    "The functions with more than 8 parameters, most first, the exempt ones marked"
    many = many_params(fns)
    rows = [f"  {f.module}.{f.name}: {f.params}{'  (exempt)' * exempt(f)}" for f in many]
    return [f'functions with more than {MANY} parameters: {len(many)}'] + rows


def run_rows(runs:dict)->list:
    "The five longest runs with their notebooks, then each notebook's longest six"
    top = ', '.join(f"{r} ({nb})" for r, nb in longest_runs(runs)) or 'no notebooks'
    per = sorted(runs.items(), key=lambda kv: -max(kv[1]))
    return [f'longest runs of exported cells: {top}'] + [f"  {nb}: {sorted(rs)[:-7:-1]}" for nb, rs in per]


def import_rows(mods:list)->list:
    "Private names imported from another module"
    rows = [f"  {m.name} imports {n} from {src}" for m in mods for src, n in m.private]
    return [f'private names imported from another module: {len(rows)}'] + rows


def repeat_rows(reps:list|None)->list:
    "The repeated blocks, or a line saying the tool is absent"
    if reps is None:
        return ['duplicates tool not on PATH: repeated blocks not checked']
    return [f'repeated blocks of 6+ lines (duplicates tool): {len(reps)}'] + ['  ' + l for l in reps]


def check_rows(ok:dict)->list:
    "PASS or FAIL for every limit"
    return [f"{'PASS' if v else 'FAIL'}  {k} ≤ {LIMITS[k]}" for k, v in ok.items()]


def report(name:str, mods:list, runs:dict, reps:list|None, ok:dict)->str:
    "The table, the module sizes, the lists behind the figures and the verdicts, as text"
    fns = fns_of(mods)
    rows = sorted(map(module_figures, mods), key=lambda d: -d['code_lines'])
    parts = [table(name, summary(mods, runs, reps)), [MODULE_HEAD] + [module_row(d) for d in rows],
             dense_rows(fns) + params_rows(fns) + run_rows(runs) + import_rows(mods) + repeat_rows(reps),
             check_rows(ok)]
    return '\n\n'.join('\n'.join(p) for p in parts)


def json_lists(mods:list, runs:dict, reps:list|None)->dict:
    "The lists behind the figures, for JSON"
    fns = fns_of(mods)
    many = [vars(f) | {'exempt': exempt(f)} for f in many_params(fns)]
    return {'modules': [module_figures(m) for m in mods], 'densest': [vars(f) for f in densest(fns)],
            'many_params': many, 'runs_by_notebook': runs, 'repeats': reps,
            'private': [(m.name, *p) for m in mods for p in m.private]}


def as_json(pkg:Path, mods:list, runs:dict, reps:list|None, ok:dict)->str:
    "The figures, the verdicts and the lists as JSON"
    figures = {'package': str(pkg)} | summary(mods, runs, reps) | {'verdicts': ok}
    return json.dumps(figures | json_lists(mods, runs, reps), indent=1)


def parse_args(argv=None)->argparse.Namespace:
    "The command line"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--path', type=Path, help='package folder to measure (default: lesion_fastai/ of this checkout)')
    p.add_argument('--nbs', type=Path, help='notebook folder (default: nbs/ when --path is not given)')
    p.add_argument('--json', action='store_true', help='print the figures as JSON')
    p.add_argument('--check', action='store_true', help='exit 1 when a must-hold limit is broken')
    return p.parse_args(argv)


def folders(a:argparse.Namespace)->tuple:
    "The package folder and the notebook folder (None: no notebooks) the command line names"
    pkg = (a.path or ROOT/'lesion_fastai').resolve()
    return pkg, a.nbs or (None if a.path else ROOT/'nbs')


def main(argv=None)->int:
    "Measure, print, and with `--check` say by the exit status whether every limit holds"
    a = parse_args(argv)
    pkg, nbs = folders(a)
    mods = [read_module(f, pkg) for f in module_files(pkg)]
    runs = notebook_runs(nbs) if nbs else {}
    reps = repeated_blocks(pkg)
    ok = verdicts(summary(mods, runs, reps), skip=() if nbs else ('longest_run',))
    text = as_json(pkg, mods, runs, reps, ok) if a.json else report(pkg.name, mods, runs, reps, ok)
    print(text)
    return 1 if a.check and not all(ok.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
