"""The flag table (``dodoco.commands.add_flags``): each row one argparse flag, exactly as if written out."""

import argparse

import pytest

from dodoco.commands import add_flags, byte_size, byte_sizes, csv_floats, csv_ints


def _flags(p) -> dict:
    return {a.dest: (a.option_strings, a.type, a.help, a.default) for a in p._actions if a.dest != "help"}


def test_a_table_builds_the_flags_written_out():
    table = argparse.ArgumentParser()
    add_flags(
        table,
        """
        --ep-batch  int    sequences per rank per step B (default: per run, the largest of
                           1,2,4,8 leaving 3 steps; see
                           --batch)
        --skews     floats receiver skews
        --name      str    a label
        --sizes     sizes  per-rank sizes, e.g. 16M,64M
    """,
    )
    by_hand = argparse.ArgumentParser()
    by_hand.add_argument(
        "--ep-batch",
        type=int,
        help="sequences per rank per step B (default: per run, the largest of 1,2,4,8 leaving 3 steps; see --batch)",
    )
    by_hand.add_argument("--skews", type=csv_floats, help="receiver skews")
    by_hand.add_argument("--name", help="a label")
    by_hand.add_argument("--sizes", type=byte_sizes, help="per-rank sizes, e.g. 16M,64M")
    assert _flags(table) == _flags(by_hand)
    args = table.parse_args(["--ep-batch", "4", "--skews", "1,1.5", "--sizes", "1K,2M"])
    assert (args.ep_batch, args.skews, args.name, args.sizes) == (4, [1.0, 1.5], None, [1024, 2 << 20])


def test_flag_value_types_by_hand():
    assert csv_ints("1,2,4") == [1, 2, 4] and csv_floats("1.5,2") == [1.5, 2.0]
    assert byte_size("64K") == 65536 and byte_size("1G") == 1 << 30 and byte_size("512") == 512
    with pytest.raises(argparse.ArgumentTypeError, match="'1X' is not a size"):
        byte_size("1X")


def test_an_unknown_type_names_the_flag_and_the_known_types():
    with pytest.raises(ValueError, match="--n has type 'integer'; known types are str, int"):
        add_flags(argparse.ArgumentParser(), "--n integer a count")
