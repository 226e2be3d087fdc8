"""Print the bring-up loop once the plugin is generated (nothing is deleted: every
generated file is used by the chosen protocol and heartbeat style)."""

PROJECT = {{ cookiecutter.__project_dir | jsonify }}
SLUG = {{ cookiecutter.venue_slug | jsonify }}

print(
    f"""
Generated {PROJECT}/. Bring-up loop:
  pip install -e {PROJECT}      # registers the '{SLUG}' venue
  spiceflow venues              # lists {SLUG}
  cd {PROJECT} && pytest        # the plugin's own tests (simulator on loopback)
  spiceflow run --profile demo --profile ws-only --venue {SLUG}
Then follow the checklist in {PROJECT}/README.md (look for '# FILL IN:').
"""
)
