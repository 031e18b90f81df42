"""Native batch delegation: a native-mode batch runs on the providers' own batch APIs.

`support` says which deployments can and which mode a batch resolves to; `runner` is the
worker's side task that submits, polls and collects upstream jobs (`jobs` for one job).
"""
