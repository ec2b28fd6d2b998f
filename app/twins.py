"""The API's views as cacheable answers: `@cacheable` gives a POST view its ETag, 304/412 and
Cache-Control (app/httpcache.py), and `add_get_twins` gives each such view a GET twin at the same
path that a shared cache can keep: `GET /api/attention?text=...&layers=2` answers exactly what
`POST /api/attention {"text": ..., "layers": [2]}` answers (the same route function, so the same
payload, response-cache key and ETag).

A twin's query is read into the POST's own request schema, so the validation is the same (a
misspelt parameter is a 422 like a misspelt field). Query values map to fields as:
- a number, a bool (true/false, 1/0) or a string: the value (given twice: a 422);
- a list of numbers or names (`layers`, `then`, `parts`): repeated (`layers=1&layers=2`) or
  comma-separated (`layers=1,2`, as the explorer's URL writes `then`), or both; an empty value is the
  empty list;
- a list of texts (`sentences`): repeated only (a sentence may hold commas);
- a list of [layer, head] pairs (`ablate`): `layer.head` items, repeated or comma-separated
  (`ablate=2.3,10.1`, as the explorer's URL writes `off`).
"""

import functools
import inspect
import types
from typing import Annotated, Union, get_args, get_origin

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

from .deps import RunnerDep
from .httpcache import finish, model_tag, not_modified


def cacheable(endpoint):
    """Marks an API view as a pure function of its request, and makes its answer cacheable: the ETag
    from the model's weight hash, the code and the validated request (its JSON with sorted keys, the
    model's id resolved), computed before any work; 304 (GET) or 412 (POST) on a matching If-None-Match."""

    @functools.wraps(endpoint)
    async def view(**kwargs):
        req = next(v for v in kwargs.values() if isinstance(v, BaseModel))
        request, runner = kwargs["request"], kwargs["runner"]
        model_id = runner.registry.resolve(getattr(req, "model", None))
        tag = await model_tag(request, runner.versions, model_id, req.model_dump(mode="json") | {"model": model_id})
        max_age = runner.settings.cache_max_age
        return not_modified(request, tag, max_age) or finish(request, await endpoint(**kwargs), tag, max_age)

    view.request_model = next(p.annotation for p in inspect.signature(endpoint).parameters.values()
                              if isinstance(p.annotation, type) and issubclass(p.annotation, BaseModel))
    return view


def _strip(annotation):
    """The type under Optional[...] and Annotated[...]."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def field_kind(annotation) -> str:
    """'pairs' (list of (int, int)), 'items' (list of numbers or names), 'texts' (list of str) or 'value'."""
    t = _strip(annotation)
    if get_origin(t) is not list:
        return "value"
    item = _strip(get_args(t)[0])
    if get_origin(item) is tuple:
        return "pairs"
    return "texts" if item is str else "items"


def _items(values: list[str]) -> list[str]:
    return [part for v in values if v != "" for part in v.split(",")]


def query_data(schema: type[BaseModel], query: QueryParams) -> dict:
    """The query's parameters as the request schema's fields (module docstring), to be validated by it."""
    data = {}
    for name in dict.fromkeys(query.keys()):
        values = query.getlist(name)
        field = schema.model_fields.get(name)
        kind = "value" if field is None else field_kind(field.annotation)
        if kind == "items":
            data[name] = _items(values)
        elif kind == "pairs":
            data[name] = [item.split(".") for item in _items(values)]
        elif kind == "texts":
            data[name] = values
        else:
            data[name] = values[0] if len(values) == 1 else values
    return data


def query_request(schema: type[BaseModel], query: QueryParams) -> BaseModel:
    try:
        return schema.model_validate(query_data(schema, query))
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("query", *err["loc"])} for err in e.errors()]) from None


def _query_schema(prop: dict) -> dict:
    """A field's JSON schema as a query parameter's: no null (absent is the default)."""
    prop = {k: v for k, v in prop.items() if k not in ("title", "default", "description", "examples")}
    if "anyOf" in prop:
        options = [o for o in prop.pop("anyOf") if o.get("type") != "null"]
        prop |= options[0] if len(options) == 1 else {"anyOf": options}
    return prop


def query_parameters(schema: type[BaseModel]) -> list[dict]:
    """The OpenAPI parameters of a twin: one per field of the request schema, described as it is read."""
    js = schema.model_json_schema()
    out = []
    for name, prop in js["properties"].items():
        kind = field_kind(schema.model_fields[name].annotation)
        description = prop.get("description", "")
        if kind == "pairs":
            item_schema = {"type": "array", "items": {"type": "string", "pattern": r"^\d+\.\d+$"}}
            if "maxItems" in (q := _query_schema(prop)):
                item_schema["maxItems"] = q["maxItems"]
            description += "; as layer.head items, repeated or comma-separated (ablate=2.3,10.1)"
        else:
            item_schema = _query_schema(prop)
            if kind == "items":
                description += f"; repeated ({name}=1&{name}=2) or comma-separated ({name}=1,2)"
            elif kind == "texts":
                description += f"; repeated, one {name}=... each"
        param = {"name": name, "in": "query", "required": name in js.get("required", ()), "schema": item_schema,
                 "description": description}
        if kind != "value":
            param |= {"style": "form", "explode": True}
        if "examples" in prop:
            param["example"] = prop["examples"][0]
        out.append(param)
    return out


def _twin(view, schema: type[BaseModel], name: str):
    """The GET route's function: the query read into schema, then the POST route's own function."""

    async def twin(request: Request, runner: RunnerDep):
        return await view(**{name: query_request(schema, request.query_params), "request": request, "runner": runner})

    return twin


def add_get_twins(router: APIRouter) -> None:
    """For each @cacheable POST route of router: GET at the same path, its query read into the same schema."""
    for route in list(router.routes):
        schema = getattr(route.endpoint, "request_model", None)
        if schema is None or "POST" not in route.methods:
            continue
        name = next(n for n, p in inspect.signature(route.endpoint).parameters.items() if p.annotation is schema)

        router.add_api_route(
            route.path.removeprefix(router.prefix), _twin(route.endpoint, schema, name), methods=["GET"], response_model=route.response_model,
            responses=route.responses, name=f"{route.name}_get", summary=f"{route.summary or route.name.capitalize()} (GET twin)",
            description=f"The same answer as `POST {route.path}` for the same parameters, as a URL that a shared cache "
                        "(nginx, a CDN) can keep: the body's fields as query parameters (lists repeated or comma-separated, "
                        f"see app/twins.py). {inspect.getdoc(route.endpoint) or ''}",
            openapi_extra={"parameters": query_parameters(schema)})
