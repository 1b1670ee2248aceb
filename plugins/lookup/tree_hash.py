# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: tree_hash
short_description: A content hash of directories and values, for content-addressed image tags
version_added: 0.1.0
description:
  - Hashes every regular file below each given directory (relative path, mode and content, in
    sorted order) together with the O(extra) values, and returns the first O(length) hex digits of
    the SHA-256.
  - The same inputs give the same hash on every controller, so an image tagged with it is rebuilt
    only when something that goes into it changed.
author: peerlab developers (@peerlab)
options:
  _terms:
    description: Directories to hash.
    required: true
    type: list
    elements: path
  extra:
    description: Values that also go into the image (build arguments, base image tag).
    type: dict
    default: {}
  length:
    description: Number of hex digits returned.
    type: int
    default: 12
"""

EXAMPLES = r"""
- name: Tag the node image by what goes into it
  ansible.builtin.set_fact:
    image_tag: "{{ lookup('peerlab.bitcoin.tree_hash', 'images/bitcoin-node', extra={'version': '29.5'}) }}"
"""

RETURN = r"""
_raw:
  description: One hex string per call.
  type: list
  elements: str
"""

from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ..module_utils._images import tree_hash


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        directories = [self.find_file_in_search_path(variables, "files", str(term)) or str(term) for term in terms]
        try:
            return [tree_hash(directories, self.get_option("extra"), self.get_option("length"))]
        except ValueError as error:
            raise AnsibleLookupError(f"tree_hash: {error}") from None
