import pytest

from storage_core.errors import CommandError
from storage_core.executor import Executor


def test_accepted_exit_codes_are_reported_not_raised():
    result = Executor().run(["sh", "-c", "echo out; echo err >&2; exit 2"], ok_exit_codes=(0, 2))
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 2)


def test_other_exit_codes_raise_with_the_command_and_its_output():
    with pytest.raises(CommandError) as err:
        Executor().run(["sh", "-c", "echo broken >&2; exit 3"])
    assert err.value.exit_code == 3 and "broken" in str(err.value) and "exit code 3" in str(err.value)


def test_arguments_never_reach_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    result = Executor().run(["echo", f"; touch {marker}"])
    assert result.stdout.strip() == f"; touch {marker}" and not marker.exists()


def test_missing_programs_and_hangs_are_command_errors():
    with pytest.raises(CommandError, match="No such file"):
        Executor().run(["/nonexistent/tool"])
    with pytest.raises(CommandError, match="no answer within 0.2 s"):
        Executor().run(["sleep", "5"], timeout=0.2)


def test_a_command_given_as_a_string_is_refused():
    import pytest

    from storage_core.executor import Executor

    with pytest.raises(TypeError, match="argv lists, never strings"):
        Executor().run("mount -a")
