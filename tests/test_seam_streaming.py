"""Target.run(on_line=...) streams progress lines while still capturing the whole output."""

from ragops.config import load_config
from ragops.seam import Target


def test_run_hands_each_line_to_the_callback_as_it_arrives_and_masks_secrets():
    target = Target(host=load_config().hosts["local"])
    seen: list[str] = []
    res = target.run('echo "pw is $PW"; for i in 1 2; do echo step$i; done', secrets={"PW": "s3cr3t-value"},
                     on_line=seen.append)
    assert seen == ["pw is ****", "step1", "step2"]
    assert res.stdout.splitlines() == ["pw is ****", "step1", "step2"]
