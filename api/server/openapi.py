"""The OpenAPI document, completed with what FastAPI cannot derive from the routes: links from the
operations that create a resource to the operations on it (clients and schemathesis' stateful phase
follow them), and the API key when the server needs one, so that the document says what the server
enforces."""
from __future__ import annotations

from fastapi import FastAPI

# (path, method, status) of a creating operation -> (the id's path parameter, operations on the resource)
CREATES = {
    ("/jobs", "post", "202"): ("job_id", [("get", "/jobs/{job_id}"), ("post", "/jobs/{job_id}/cancel"),
                                          ("post", "/jobs/{job_id}/resume"), ("get", "/jobs/{job_id}/summary"),
                                          ("get", "/jobs/{job_id}/result"), ("get", "/jobs/{job_id}/picture"),
                                          ("delete", "/jobs/{job_id}")]),
    ("/parks", "post", "201"): ("park_id", [("get", "/parks/{park_id}"), ("get", "/parks/{park_id}/indicators"),
                                            ("get", "/parks/{park_id}/balance"), ("post", "/parks/{park_id}/whatif"),
                                            ("get", "/parks/{park_id}/picture")]),
    ("/networks", "post", "201"): ("network_id", [("get", "/networks/{network_id}")]),
}


def add_links(schema: dict) -> None:
    paths = schema["paths"]
    for (path, method, status), (param, targets) in CREATES.items():
        links = {}
        for target_method, target_path in targets:
            op_id = paths[target_path][target_method]["operationId"]
            links[op_id] = {"operationId": op_id, "parameters": {param: "$response.body#/id"},
                            "description": f"{target_method.upper()} {target_path} of the resource created"}
        paths[path][method]["responses"][status]["links"] = links


def add_key(schema: dict, open_paths: tuple[str, ...]) -> None:
    schema.setdefault("components", {})["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "Bearer": {"type": "http", "scheme": "bearer"}}
    for path, ops in schema.get("paths", {}).items():
        for op in ops.values():
            if path not in open_paths:
                op["security"] = [{"ApiKey": []}, {"Bearer": []}]


def install(app: FastAPI, keyed: bool, open_paths: tuple[str, ...]) -> None:
    plain = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = plain()
            add_links(schema)
            if keyed:
                add_key(schema, open_paths)
            app.openapi_schema = schema
        return app.openapi_schema
    app.openapi = openapi
