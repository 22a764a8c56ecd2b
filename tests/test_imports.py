"""Dependencies run one way: no import cycles in estrnn_jax (at any level), and the library imports neither the
entry points nor the dataset builders. Read from the source with `ast`, so function-level imports count too."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
# Modules run as programs (`python -m estrnn_jax.<name>`); everything else in estrnn_jax/ is the library.
ENTRY_POINTS = frozenset({'main', 'evaluate', 'deblur', 'convert', 'profile', 'export', 'cross_evaluate', 'plan'})


def imported_modules(path: pathlib.Path, package: str) -> set[str]:
  """Every module `path` imports anywhere in its body (top level, functions, `if` blocks), as dotted names."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:  # relative: `from . import x` / `from .x import y` inside `package`
        base = package if node.level == 1 else package.rsplit('.', node.level - 1)[0]
        module = f'{base}.{node.module}' if node.module else base
      else:
        module = node.module or ''
      found.add(module)
      found.update(f'{module}.{alias.name}' for alias in node.names)  # `from pkg import submodule`
  return found


def package_graph(package_dir: pathlib.Path) -> dict[str, set[str]]:
  """{module: modules of the same package it imports} for the top-level modules of `package_dir`."""
  package = package_dir.name
  modules = {p.stem for p in package_dir.glob('*.py') if p.stem != '__init__'}
  graph = {}
  for name in sorted(modules):
    imports = imported_modules(package_dir / f'{name}.py', package)
    graph[name] = {m.split('.')[1] for m in imports
                   if m.startswith(f'{package}.') and m.split('.')[1] in modules and m.split('.')[1] != name}
  return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components with more than one module (Tarjan), each sorted."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for nxt in sorted(graph.get(node, ())):
      if nxt not in index:
        visit(nxt)
        low[node] = min(low[node], low[nxt])
      elif nxt in on_stack:
        low[node] = min(low[node], index[nxt])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        components.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return components


def test_checker_finds_a_function_level_cycle(tmp_path):
  package = tmp_path / 'pkg'
  package.mkdir()
  (package / '__init__.py').write_text('')
  (package / 'a.py').write_text('from pkg import b\n')
  (package / 'b.py').write_text('def f():\n  from pkg import c\n')
  (package / 'c.py').write_text('import os\nif True:\n  import pkg.a\n')
  (package / 'd.py').write_text('from . import a\n')
  graph = package_graph(package)
  assert graph == {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
  assert find_cycles(graph) == [['a', 'b', 'c']]


def test_estrnn_jax_has_no_import_cycle():
  graph = package_graph(REPO / 'estrnn_jax')
  assert 'model' in graph and 'train' in graph  # the real package was read
  assert find_cycles(graph) == []


def test_library_imports_no_entry_point_and_no_dataset_builder():
  package_dir = REPO / 'estrnn_jax'
  problems = []
  for path in sorted(package_dir.glob('*.py')):
    if path.stem in ENTRY_POINTS or path.stem == '__init__':
      continue
    for module in imported_modules(path, 'estrnn_jax'):
      parts = module.split('.')
      if parts[0] == 'datasets' or (parts[0] == 'estrnn_jax' and len(parts) > 1 and parts[1] in ENTRY_POINTS):
        problems.append(f'{path.name} imports {module}')
  assert problems == []
