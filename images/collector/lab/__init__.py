"""The collection's RPC client, mining and payment draws and regtest traffic (plugins/module_utils
links to these files): the activity container runs the same code as the traffic playbook."""
