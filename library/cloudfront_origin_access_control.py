#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manage a CloudFront Origin Access Control (neither amazon.aws nor community.aws has one)."""

from __future__ import annotations

import contextlib

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# AnsibleAWSModule reports a missing botocore itself.
with contextlib.suppress(ImportError):
    from botocore.exceptions import BotoCoreError, ClientError

DOCUMENTATION = r"""
---
module: cloudfront_origin_access_control
short_description: Create, update and delete CloudFront Origin Access Controls
description:
  - Manages a CloudFront Origin Access Control (OAC), the successor of Origin Access
    Identities, through which CloudFront signs its requests to an origin such as a
    private S3 bucket.
  - An OAC is identified by its O(name), which CloudFront requires to be unique in
    the account. The module finds it by that name, compares its configuration with
    the options and updates only what differs.
  - Supports check mode and diff mode.
options:
  name:
    description:
      - Name of the Origin Access Control, unique in the account (at most 64 characters).
    type: str
    required: true
  description:
    description:
      - Free-form description.
    type: str
    default: ""
  origin_type:
    description:
      - Type of origin the OAC signs requests to.
    type: str
    choices: [s3, mediastore, lambda, mediapackagev2]
    default: s3
  signing_behavior:
    description:
      - V(always) signs every origin request (the usual choice for S3);
        V(no-override) keeps a viewer's C(Authorization) header when present;
        V(never) does not sign.
    type: str
    choices: [always, never, no-override]
    default: always
  signing_protocol:
    description:
      - Signing protocol; CloudFront supports only V(sigv4).
    type: str
    choices: [sigv4]
    default: sigv4
  state:
    description:
      - V(present) creates or updates the OAC; V(absent) deletes it.
      - CloudFront refuses to delete an OAC that a distribution still uses.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author:
  - fleet
"""

EXAMPLES = r"""
- name: Let CloudFront sign its requests to the static-assets bucket
  cloudfront_origin_access_control:
    name: fleet-production-static
    description: CloudFront to the fleet's static-assets bucket
    origin_type: s3
    signing_behavior: always
  register: oac

- name: Use it on the distribution's S3 origin
  community.aws.cloudfront_distribution:
    origins:
      - id: static
        domain_name: fleet-production-static-assets.s3.us-east-1.amazonaws.com
        origin_access_control_id: "{{ oac.origin_access_control.id }}"
        s3_origin_access_identity_enabled: false

- name: Remove it once no distribution uses it
  cloudfront_origin_access_control:
    name: fleet-production-static
    state: absent
"""

RETURN = r"""
origin_access_control:
  description: The OAC as it is (or would be, in check mode) after the task; empty after deletion.
  returned: always
  type: dict
  contains:
    id:
      description: The OAC's id, to put in an origin's C(origin_access_control_id).
      type: str
      sample: E2QWRUHAPOMQZL
    name:
      description: Its name.
      type: str
    description:
      description: Its description.
      type: str
    origin_type:
      description: The type of origin.
      type: str
      sample: s3
    signing_behavior:
      description: When CloudFront signs.
      type: str
      sample: always
    signing_protocol:
      description: How CloudFront signs.
      type: str
      sample: sigv4
    etag:
      description: The current version's ETag (absent in check mode before creation).
      type: str
"""

# Module option -> key of the OriginAccessControlConfig structure.
FIELDS = {
    "name": "Name",
    "description": "Description",
    "origin_type": "OriginAccessControlOriginType",
    "signing_behavior": "SigningBehavior",
    "signing_protocol": "SigningProtocol",
}


def _config(params):
    return {key: params[option] for option, key in FIELDS.items()}


def _result(config, control_id=None, etag=None):
    out = {option: config.get(key, "") for option, key in FIELDS.items()}
    out["id"] = control_id
    if etag:
        out["etag"] = etag
    return out


def _find(client, module, name):
    """(id, config, etag) of the OAC called ``name``, or (None, None, None)."""
    matches, marker = [], None
    while True:
        kwargs = {"Marker": marker} if marker else {}
        page = client.list_origin_access_controls(aws_retry=True, **kwargs)["OriginAccessControlList"]
        matches += [item for item in page.get("Items", []) if item.get("Name") == name]
        marker = page.get("NextMarker")
        if not page.get("IsTruncated") or not marker:
            break
    if not matches:
        return None, None, None
    if len(matches) > 1:
        module.fail_json(msg=f"{len(matches)} Origin Access Controls are called {name}; names must be unique")
    found = client.get_origin_access_control(Id=matches[0]["Id"], aws_retry=True)
    control = found["OriginAccessControl"]
    return control["Id"], control["OriginAccessControlConfig"], found["ETag"]


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "description": {"type": "str", "default": ""},
            "origin_type": {
                "type": "str",
                "default": "s3",
                "choices": ["s3", "mediastore", "lambda", "mediapackagev2"],
            },
            "signing_behavior": {"type": "str", "default": "always", "choices": ["always", "never", "no-override"]},
            "signing_protocol": {"type": "str", "default": "sigv4", "choices": ["sigv4"]},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
        supports_check_mode=True,
    )
    name, state = module.params["name"], module.params["state"]
    if not 1 <= len(name) <= 64:
        module.fail_json(msg=f"name must be 1 to 64 characters, got {len(name)}")
    client = module.client("cloudfront", retry_decorator=AWSRetry.jittered_backoff())
    wanted = _config(module.params)

    try:
        control_id, current, etag = _find(client, module, name)
        if state == "absent":
            if control_id is None:
                module.exit_json(changed=False, origin_access_control={})
            diff = {"before": _result(current, control_id), "after": {}}
            if not module.check_mode:
                client.delete_origin_access_control(Id=control_id, IfMatch=etag, aws_retry=True)
            module.exit_json(changed=True, origin_access_control={}, diff=diff)

        if control_id is None:
            diff = {"before": {}, "after": _result(wanted)}
            if module.check_mode:
                module.exit_json(changed=True, origin_access_control=_result(wanted), diff=diff)
            created = client.create_origin_access_control(OriginAccessControlConfig=wanted, aws_retry=True)
            control = created["OriginAccessControl"]
            diff["after"]["id"] = control["Id"]
            module.exit_json(
                changed=True,
                origin_access_control=_result(control["OriginAccessControlConfig"], control["Id"], created["ETag"]),
                diff=diff,
            )

        # CloudFront may omit an empty description: compare it as "".
        normalised = {key: current.get(key) or "" for key in FIELDS.values()}
        if normalised == wanted:
            module.exit_json(changed=False, origin_access_control=_result(current, control_id, etag))
        diff = {"before": _result(normalised, control_id), "after": _result(wanted, control_id)}
        if module.check_mode:
            module.exit_json(changed=True, origin_access_control=_result(wanted, control_id, etag), diff=diff)
        updated = client.update_origin_access_control(
            Id=control_id, IfMatch=etag, OriginAccessControlConfig=wanted, aws_retry=True
        )
        control = updated["OriginAccessControl"]
        module.exit_json(
            changed=True,
            origin_access_control=_result(control["OriginAccessControlConfig"], control["Id"], updated["ETag"]),
            diff=diff,
        )
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg=f"Unable to manage the Origin Access Control {name}")


if __name__ == "__main__":
    main()
