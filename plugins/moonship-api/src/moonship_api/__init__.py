"""Moonship REST API service (`moonship -a`): `moonship_api.service.ApiService`, registered as `api`.

Nothing is imported here, so loading the plugin stays cheap in processes that do not run the API.
"""
