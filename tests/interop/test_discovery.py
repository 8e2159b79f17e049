"""Discovery: every client sees glance-download among REGION2's import methods."""


def test_osc_image_import_info_lists_glance_download(cloud):
    info = cloud.osc_json("image", "import", "info")
    methods = info["import-methods"]
    # OSC prints the discovery document; the value list may be a list or a comma string
    value = methods["value"] if isinstance(methods, dict) else methods
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    assert "glance-download" in value, info


def test_glanceclient_import_info_lists_glance_download(cloud):
    out = cloud.glance("import-info").stdout
    assert "glance-download" in out, out


def test_sdk_get_import_info_lists_glance_download(cloud):
    info = cloud.sdk().image.get_import_info()
    assert "glance-download" in info.import_methods["value"], info.import_methods


def test_info_import_raw_http_is_a_superset_of_upstream(cloud):
    via = cloud.http("GET", cloud.region2_image_url + "/v2/info/import")
    direct = cloud.http("GET", cloud.region2_glance + "/v2/info/import")
    assert via.status_code == 200 and direct.status_code == 200
    assert via.headers["Content-Type"].startswith("application/json")
    v, d = via.json()["import-methods"], direct.json()["import-methods"]
    assert v["type"] == "array" and v["description"] == d["description"]
    assert "glance-download" in v["value"]
    assert set(d["value"]) <= set(v["value"])
    assert len(v["value"]) == len(set(v["value"])), "glance-download listed twice: %s" % v["value"]


def test_image_create_header_lists_glance_download(cloud):
    r = cloud.http("POST", cloud.region2_image_url + "/v2/images",
                   json={"name": "gds-header-check", "disk_format": "raw", "container_format": "bare"})
    try:
        assert r.status_code == 201, r.text
        methods = [m.strip() for m in r.headers.get("OpenStack-image-import-methods", "").split(",")]
        assert "glance-download" in methods, r.headers
        assert len(methods) == len(set(methods)), methods
        assert r.json()["status"] == "queued"
    finally:
        if r.status_code == 201:
            cloud.delete_quietly(r.json()["id"])


def test_unauthenticated_info_import_is_401(cloud):
    r = cloud.http("GET", cloud.region2_image_url + "/v2/info/import", token=False)
    assert r.status_code == 401, r.text
    assert "Keystone uri=" in r.headers.get("WWW-Authenticate", ""), r.headers


def test_healthcheck(cloud, sidecar_present):
    r = cloud.http("GET", cloud.region2_image_url + "/healthcheck", token=False)
    assert r.status_code == 200, r.text
    if sidecar_present:
        # the sidecar's own liveness; it says something about the upstream it fronts
        assert r.text.strip(), "empty healthcheck body"
    else:
        assert r.text.strip() == "OK"
