using System.Text;
using System.Text.Json;
using ExtProc.Buffers;
using ExtProc.Protocols;
using ExtProc.Protocols.Json;
using Xunit.Abstractions;

namespace ExtProc.Tests.Protocols;

/// <summary>
/// faults.md J11: mutated request bodies never make the reader throw (every refusal is a coded 400), and a body
/// the reader accepts is rewritten by the model rewrite into valid JSON that reads back the same.
/// </summary>
public sealed class LlmBodyFuzzTests(ITestOutputHelper output)
{
    private const int Iterations = 20_000;

    private static readonly (ProtocolKind Protocol, string Body)[] Seeds =
    [
        (ProtocolKind.OpenAiChat, """{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"Hi \u00e9 \ud83d\ude00"}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"number"}}}}}],"temperature":0.5,"user":"u"}"""),
        (ProtocolKind.AnthropicMessages, """{"model":"claude","max_tokens":16,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":"x"}],"tools":[{"name":"t","input_schema":{"type":"object"}}],"metadata":{"user_id":"u"}}"""),
        (ProtocolKind.Gemini, """{"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"generationConfig":{"maxOutputTokens":8},"tools":[{"functionDeclarations":[{"name":"a"}]}]}"""),
    ];

    private static readonly string[] Fragments = ["{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "1e400", "-0", "NaN", "null", "\"model\"", "\"Model\"", "\"api_base\"", "\u017f", "\xff", "\0"];

    [Fact]
    public void MutatedBodies_ReaderNeverThrows_AcceptedBodiesRewriteToValidJson()
    {
        var random = new Random(4711);
        var accepted = 0;
        var codes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < Iterations; i++)
        {
            var (protocol, seed) = Seeds[i % Seeds.Length];
            var body = Mutate(Encoding.UTF8.GetBytes(seed), random);
            var summary = new RequestSummary();
            bool ok;
            JsonViolation violation;
            try
            {
                ok = LlmRequestReader.TryRead(body, protocol, LlmRequestReader.DefaultMaxDepth, summary, out violation);
            }
            catch (Exception ex)
            {
                throw new Xunit.Sdk.XunitException($"reader threw {ex.GetType().Name} on {Convert.ToBase64String(body)}");
            }

            if (!ok)
            {
                Assert.NotEqual("none", violation.Code);
                codes[violation.Code] = codes.GetValueOrDefault(violation.Code) + 1;
                continue;
            }

            accepted++;
            if (protocol == ProtocolKind.Gemini)
            {
                continue;
            }

            using var rewritten = new PooledBufferWriter();
            TopLevelFieldRewriter.SetString(body, "model"u8, "upstream-model"u8, rewritten);
            using (var json = JsonDocument.Parse(rewritten.WrittenMemory))
            {
                Assert.Equal("upstream-model", json.RootElement.GetProperty("model").GetString());
            }

            var again = new RequestSummary();
            Assert.True(LlmRequestReader.TryRead(rewritten.WrittenSpan, protocol, LlmRequestReader.DefaultMaxDepth, again, out var second), second.Message);
            Assert.Equal((summary.Stream, summary.MaxTokens, summary.Tools.Count, summary.MessageCount, summary.ContentBytes),
                (again.Stream, again.MaxTokens, again.Tools.Count, again.MessageCount, again.ContentBytes));
        }

        output.WriteLine($"J11: {Iterations} mutated bodies, {accepted} accepted, 0 exceptions; refusals by code: {string.Join(", ", codes.Select(c => $"{c.Key} {c.Value}"))}");
        Assert.True(accepted > 0 && codes.Count >= 5, "the mutations must reach both outcomes and several refusal codes");
    }

    private static byte[] Mutate(byte[] body, Random random)
    {
        var bytes = new List<byte>(body);
        var edits = random.Next(1, 4);
        for (var e = 0; e < edits; e++)
        {
            var at = random.Next(bytes.Count + 1);
            switch (random.Next(5))
            {
                case 0 when bytes.Count > 0:
                    bytes.RemoveRange(Math.Min(at, bytes.Count - 1), Math.Min(random.Next(1, 8), bytes.Count - Math.Min(at, bytes.Count - 1)));
                    break;
                case 1:
                    bytes.InsertRange(at, Encoding.UTF8.GetBytes(Fragments[random.Next(Fragments.Length)]));
                    break;
                case 2 when bytes.Count > 0:
                    bytes[Math.Min(at, bytes.Count - 1)] = (byte)random.Next(256);
                    break;
                case 3:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                default:
                    // Leave this edit out: some bodies must stay valid.
                    break;
            }
        }

        return [.. bytes];
    }
}
