"""The command line: clear errors before anything is started."""

from __future__ import annotations

from odmm import netns
from odmm.cli import main


def test_bad_topology_file_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[nodes]]\nname="x"\nrole="core"\n[[nodes]]\nname="y"\nrole="core"\n'
                   '[[links]]\na="x"\nb="y"\ndelay_ms=-1\n')
    before = netns.ours()
    assert main(["measure", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"odmm: error: {bad}: link x-y: delay_ms must not be negative, got -1"
    assert netns.ours() == before  # nothing was started


def test_bad_set_syntax(capsys):
    assert main(["topo", "basic", "--set", "nonsense"]) == 2
    assert "--set expects key=value" in capsys.readouterr().err


def test_topo_show(capsys):
    assert main(["topo", "basic", "--set", "links.core-ha.delay_ms=20"]) == 0
    out = capsys.readouterr().out
    assert "core-ha: 20 ms" in out and "2001:db8:a001::/48" in out


def test_topo_list(capsys):
    assert main(["topo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("basic") and "grid" in out and "line" in out
