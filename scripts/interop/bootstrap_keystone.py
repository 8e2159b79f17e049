#!/usr/bin/env python3
"""Populate a freshly bootstrapped Keystone for the multi-region test cloud.

Run by scripts/cloud.sh after `keystone-manage bootstrap` (which made the admin user, the admin project,
the roles admin/manager/member/reader/service, region REGION1 (--bootstrap-region) and its identity
endpoints).
Creates, through the Keystone v3 REST API with the admin password (create first, look up on 409, so a
second run is harmless):
  - every region named by --image-url (beyond REGION1) with identity endpoints (public/internal/admin);
  - project `service` with user `glance` holding role `service` (enough for keystonemiddleware to
    validate tokens: Keystone's identity:validate_token allows the service role);
  - project `demo` with user `demo` holding `member` and `reader`;
  - service type `image` with public/internal/admin endpoints in each --image-url region.
Only the 127.0.0.1 Keystone URL given on the command line is contacted.
"""
import argparse
import sys

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

INTERFACES = ("public", "internal", "admin")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--auth-url", required=True, help="Keystone v3 URL, e.g. http://127.0.0.1:5000/v3")
    p.add_argument("--admin-password", required=True)
    p.add_argument("--glance-password", required=True)
    p.add_argument("--demo-password", required=True)
    p.add_argument("--image-url", action="append", required=True, metavar="REGION=URL",
                   help="the image endpoint of a region (repeat for each region)")
    p.add_argument("--bootstrap-region", default="REGION1",
                   help="the region keystone-manage bootstrap made (with its identity endpoints)")
    a = p.parse_args()
    image_urls = {}
    for item in a.image_url:
        region, sep, url = item.partition("=")
        if not sep or not region:
            sys.exit("--image-url wants REGION=URL, got %r" % item)
        image_urls[region] = url
    for url in (a.auth_url, *image_urls.values()):
        if not url.startswith("http://127.0.0.1:"):
            sys.exit("refusing non-loopback URL %s" % url)

    auth = v3.Password(auth_url=a.auth_url, username="admin", password=a.admin_password,
                       project_name="admin", user_domain_id="default", project_domain_id="default")
    sess = ks_session.Session(auth=auth, timeout=30)
    base = a.auth_url.rstrip("/")

    def get(path, **params):
        return sess.get(base + path, params=params).json()

    def create(collection, key, body, lookup):
        """POST; on 409 Conflict return the existing entity found by lookup()."""
        try:
            return sess.post(base + "/" + collection, json={key: body}).json()[key]
        except ks_exc.Conflict:
            return lookup()

    def first(collection, **params):
        return get("/" + collection, **params)[collection][0]

    for region in image_urls:
        if region != a.bootstrap_region:  # made by keystone-manage bootstrap
            create("regions", "region", {"id": region, "description": "glance-download-sidecar test region"},
                   lambda region=region: first("regions", id=region))

    services = {s["type"]: s for s in get("/services")["services"]}
    identity = services["identity"]
    image = services.get("image") or sess.post(base + "/services", json={"service": {
        "type": "image", "name": "glance", "enabled": True}}).json()["service"]

    endpoints = get("/endpoints")["endpoints"]

    def ensure_endpoints(service, region, url):
        for iface in INTERFACES:
            have = [e for e in endpoints if e["service_id"] == service["id"]
                    and e["region_id"] == region and e["interface"] == iface]
            if have:
                if have[0]["url"] != url:
                    sess.patch(base + "/endpoints/" + have[0]["id"], json={"endpoint": {"url": url}})
                continue
            sess.post(base + "/endpoints", json={"endpoint": {
                "service_id": service["id"], "interface": iface, "region_id": region, "url": url,
                "enabled": True}})

    for region, url in image_urls.items():
        if region != a.bootstrap_region:
            ensure_endpoints(identity, region, base)
        ensure_endpoints(image, region, url)

    roles = {r["name"]: r for r in get("/roles")["roles"]}
    for needed in ("member", "reader", "service"):
        if needed not in roles:
            roles[needed] = create("roles", "role", {"name": needed}, lambda: first("roles", name=needed))

    def project(name):
        return create("projects", "project", {"name": name, "domain_id": "default", "enabled": True},
                      lambda: first("projects", name=name, domain_id="default"))

    def user(name, password, proj):
        u = create("users", "user", {"name": name, "domain_id": "default", "password": password,
                                     "default_project_id": proj["id"], "enabled": True},
                   lambda: None)
        if u is None:  # existed: make sure the password is ours
            u = first("users", name=name, domain_id="default")
            sess.patch(base + "/users/" + u["id"], json={"user": {"password": password}})
        return u

    service_project = project("service")
    demo_project = project("demo")
    glance_user = user("glance", a.glance_password, service_project)
    demo_user = user("demo", a.demo_password, demo_project)
    for proj, usr, role in ((service_project, glance_user, "service"),
                            (demo_project, demo_user, "member"),
                            (demo_project, demo_user, "reader")):
        sess.put(base + "/projects/%s/users/%s/roles/%s" % (proj["id"], usr["id"], roles[role]["id"]))
    print("keystone bootstrap: image endpoints %s, users admin glance demo"
          % ", ".join("%s=%s" % kv for kv in image_urls.items()))


if __name__ == "__main__":
    main()
