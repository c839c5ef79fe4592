// The Vercel AI SDK against a gptbuilder server: `node script.mjs object|tools`, with GPTBUILDER_URL (the /v1 base),
// GPTBUILDER_MODEL (a GPT id) and GPTBUILDER_KEY in the environment; prints one JSON object for the test to check.
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateObject, stepCountIs, streamText, tool } from 'ai';
import { z } from 'zod';

const gptbuilder = createOpenAICompatible({
  name: 'gptbuilder',
  baseURL: process.env.GPTBUILDER_URL,
  apiKey: process.env.GPTBUILDER_KEY ?? 'unused',
  includeUsage: true,
  supportsStructuredOutputs: true, // response_format json_schema, not only json_object
});
const model = gptbuilder(process.env.GPTBUILDER_MODEL);

async function object() {
  const result = await generateObject({
    model,
    schema: z.object({ city: z.string(), country: z.string() }),
    prompt: 'Which city is the capital of France? Answer in JSON.',
    temperature: 0,
    maxRetries: 0,
  });
  return { object: result.object, usage: result.usage, finishReason: result.finishReason };
}

async function tools() {
  const calls = [];
  const result = streamText({
    model,
    prompt: 'What is the weather in Paris?',
    tools: {
      get_weather: tool({
        description: 'Current weather in a city',
        inputSchema: z.object({ city: z.string() }),
        execute: async ({ city }) => {
          calls.push({ city });
          return { city, forecast: 'sunny' };
        },
      }),
    },
    stopWhen: stepCountIs(3),
    maxRetries: 0,
  });
  const deltas = [];
  for await (const delta of result.textStream) deltas.push(delta);
  const steps = await result.steps;
  return {
    text: await result.text,
    deltas: deltas.length,
    calls,
    steps: steps.map((step) => ({ finishReason: step.finishReason, toolCalls: step.toolCalls.map((c) => c.toolName) })),
  };
}

const mode = process.argv[2];
const run = { object, tools }[mode];
if (!run) throw new Error(`unknown mode ${mode}: object or tools`);
process.stdout.write(JSON.stringify(await run()) + '\n');
