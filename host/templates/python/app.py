"""{{name}}: a sluice stage in Python. Reads `greeting` from [stage.config], writes greeting.txt."""

import json
import os

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, types


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="{{name}}",
            version="0.1.0",
            phase=types.Phase.BUILD,
            description="Writes a greeting (edit me)",
        )

    def run(self, ctx: types.StageContext) -> types.StageResult:
        config = json.loads(ctx.config)
        greeting = config.get("greeting", "hello")
        if not greeting:
            raise Err(types.Failure(message="`greeting` is empty"))
        text = f"{greeting} from {ctx.stage}\n"
        with open(os.path.join(ctx.output_dir, "greeting.txt"), "w") as handle:
            handle.write(text)
        log.log(log.Level.INFO, f"{len(ctx.inputs)} inputs seen")
        return types.StageResult(
            outputs=[types.Output(name="greeting.txt", media_type="text/plain")],
            summary=text.strip(),
        )
