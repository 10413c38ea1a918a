"""agent.conf with `source = azure-apim` (docs/azure-apim.md): the keys are
parsed and checked together, the client secret file is held to the token
file's rules, and the secret never reaches the output. (What the agent then
does with Azure: test_apim_arm.py.)"""
import pytest

from sync_helpers import TOKEN

SECRET = "Zx8Q~client-secret-never-logged.4b1f"
SERVICE = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1"
           "/providers/Microsoft.ApiManagement/service/apimService1")


def apim_conf(tmp_path, **over):
    secret = tmp_path / "client-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    conf = {"source": "azure-apim", "apim_service": SERVICE, "apim_gateway": "gw1",
            "azure_tenant": "11111111-1111-1111-1111-111111111111",
            "azure_client_id": "22222222-2222-2222-2222-222222222222",
            "azure_client_secret_file": str(secret),
            "config_path": str(tmp_path / "config.json"), "state_dir": str(tmp_path)}
    conf.update(over)
    return conf, secret


def run(make_agent, tmp_path, **over):
    conf, secret = apim_conf(tmp_path, **over)
    a = make_agent("https://unused.invalid")
    a.conf = {k: v for k, v in conf.items() if v is not None}
    a.write_conf()
    rc, out = a.run()
    assert SECRET not in out, "the client secret leaked into the output"
    return rc, out, secret, a


def test_complete_conf_goes_to_azure(make_agent, tmp_path):
    """Valid: the agent asks the authority for a token (unreachable here: 1)."""
    rc, out, _, _ = run(make_agent, tmp_path, azure_authority="https://unused.invalid")
    assert rc == 1, out
    assert "Azure AD token" in out


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_client_secret_readable_by_others_is_refused(make_agent, tmp_path, mode):
    conf, secret = apim_conf(tmp_path)
    secret.chmod(mode)
    a = make_agent("https://unused.invalid")
    a.conf = conf
    a.write_conf()
    rc, out = a.run()
    assert rc == 2
    assert "readable by its group or others" in out
    assert SECRET not in out


def test_client_secret_empty_is_refused(make_agent, tmp_path):
    conf, secret = apim_conf(tmp_path)
    secret.write_text("\n")
    a = make_agent("https://unused.invalid")
    a.conf = conf
    a.write_conf()
    rc, out = a.run()
    assert rc == 2
    assert "holds no client secret" in out


@pytest.mark.parametrize("over, says", [
    ({"apim_gateway": None}, "'apim_gateway' is required"),
    ({"azure_client_secret_file": None}, "'azure_client_secret_file' is required"),
    ({"apim_service": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/a"},
     "'apim_service' must be"),
    ({"apim_service": SERVICE + "/gateways/gw1"}, "'apim_service' must be"),
    ({"apim_gateway": "gw 1"}, "'apim_gateway' must be"),
    ({"arm_endpoint": "http://127.0.0.1:1"}, "'arm_endpoint' must start with https://"),
    ({"azure_authority": "ftp://login"}, "'azure_authority' must start with https://"),
    ({"arm_api_version": "2022-08-01&x=1"}, "'arm_api_version' must look like"),
    ({"arm_reads_per_s": "1001"}, "'arm_reads_per_s' must be an integer from 0 to 1000"),
    ({"arm_reads_per_s": "-1"}, "'arm_reads_per_s' must be an integer from 0 to 1000"),
    ({"token_file": "/etc/passwd"}, "'token_file' does not apply"),
    ({"endpoint": "https://mgmt.example"}, "'endpoint' does not apply"),
    ({"report": "true"}, "'report' does not apply"),
    ({"source": "azure"}, "'source' must be hostgate or azure-apim"),
])
def test_bad_apim_conf_is_exit_2_naming_the_key(make_agent, tmp_path, over, says):
    rc, out, _, _ = run(make_agent, tmp_path, **over)
    assert rc == 2, out
    assert says in out, out


def test_azure_keys_without_the_source_are_refused(make_agent, mgmt):
    a = make_agent(mgmt.url, apim_gateway="gw1")
    rc, out = a.run()
    assert rc == 2
    assert "need 'source = azure-apim'" in out
    assert TOKEN not in out
