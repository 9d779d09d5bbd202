from hub.settings import HubSettings


def test_an_empty_variable_means_not_set(monkeypatch):
    monkeypatch.setenv("HUB_CONNECT_URL", "")
    monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", "")
    monkeypatch.setenv("HUB_KAFKA_PORT", "29092")
    settings = HubSettings()
    assert settings.connect_url is None and settings.kafka_bootstrap is None
    assert settings.bootstrap == "127.0.0.1:29092"
    assert settings.connect == f"http://127.0.0.1:{settings.connect_port}"


def test_a_set_variable_points_at_an_existing_cluster(monkeypatch):
    monkeypatch.setenv("HUB_CONNECT_URL", "http://connect.internal:8083")
    assert HubSettings().connect == "http://connect.internal:8083"
