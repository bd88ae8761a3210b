using Envoy.Service.ExtProc.V3;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Tenancy;
using Grpc.Core;
using static ExtProc.Tests.Engine.EngineTestKit;

namespace ExtProc.Tests.Stages.Auth;

/// <summary>
/// faults.md H7 / issue 3 "Bad input": run identity scenarios through the real process with canary
/// keys and tokens, logging at Trace, then search every log line and every reply for them.
/// </summary>
public sealed class CanaryKeyTests
{
    [Fact]
    public async Task CanaryKeys_NeverInLogsErrorBodiesOrMetadata()
    {
        using var issuer = new TestIssuer();
        var jwks = Path.Combine(Path.GetTempPath(), $"canary-jwks-{Guid.NewGuid():N}.json");
        var config = Path.Combine(Path.GetTempPath(), $"canary-{Guid.NewGuid():N}.yaml");
        var canary = ApiKeyFormat.NewKey("canary");
        var revokedCanary = ApiKeyFormat.NewKey("canary-old");
        var wrongSecret = canary[..^4] + "aaaa";
        var unknownCanary = ApiKeyFormat.NewKey("canary-unknown");
        var jwtCanary = issuer.Token(audience: "https://other.test");
        var goodJwt = issuer.Token();
        await File.WriteAllTextAsync(jwks, issuer.Jwks());
        await File.WriteAllTextAsync(config, TestTenancy.BaseYaml(issuer.IdentityYaml($"file: \"{jwks}\"")).Replace("""
              beta:
                keys:
            """.TrimEnd(), $"""
              beta:
                keys:
                  - id: canary
                    hash: "{ApiKeyFormat.HashText(canary)}"
                  - id: canary-old
                    hash: "{ApiKeyFormat.HashText(revokedCanary)}"
                    revoked: true
            """.TrimEnd(), StringComparison.Ordinal));
        var replies = new List<ProcessingResponse>();
        try
        {
            await using var server = await ExtProcServer.StartAsync(new Dictionary<string, string?>
            {
                ["ExtProc:ConfigPath"] = config,
                ["Logging:LogLevel:Default"] = "Trace",
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace",
                ["Logging:LogLevel:Grpc"] = "Trace",
            });
            (string, string)[][] scenarios =
            [
                [("authorization", "Bearer " + canary)],
                [("x-api-key", canary)],
                [("api-key", canary)],
                [("x-goog-api-key", canary)],
                [("authorization", "Bearer " + wrongSecret)],
                [("authorization", "Bearer " + revokedCanary)],
                [("x-api-key", unknownCanary)],
                [("authorization", "Bearer " + canary), ("x-api-key", TestTenancy.AcmeKey)],
                [("x-api-key", canary), ("x-api-key", canary)],
                [("x_api_key", canary)],
                [("authorization", "Basic " + canary)],
                [("authorization", "Bearer " + jwtCanary)],
                [("authorization", "Bearer " + goodJwt)],
            ];
            foreach (var path in (string[])["/v1/chat/completions", "/v1/messages", "/mcp", "/v1beta/models/gemini-2.0-flash:generateContent?key=" + canary])
            {
                foreach (var headers in scenarios)
                {
                    using var call = server.Client.Process();
                    await call.RequestStream.WriteAsync(RequestHeaders(path, extra: headers));
                    Assert.True(await call.ResponseStream.MoveNext());
                    replies.Add(call.ResponseStream.Current);
                    if (call.ResponseStream.Current.ResponseCase == ProcessingResponse.ResponseOneofCase.RequestHeaders)
                    {
                        await call.RequestStream.WriteAsync(RequestBody(Utf8("""{"model":"o3-pro","messages":[]}"""), endOfStream: true));
                        Assert.True(await call.ResponseStream.MoveNext());
                        replies.Add(call.ResponseStream.Current);
                    }

                    await call.RequestStream.CompleteAsync();
                    while (await call.ResponseStream.MoveNext())
                    {
                    }
                }
            }

            var logs = server.Logs.GetSnapshot();
            Assert.Contains(logs, r => r.Id.Name == "AuthDenied");
            Assert.Contains(logs, r => r.Id.Name == "AuthAccepted");
            string[] secrets =
            [
                canary, canary["xp_canary_".Length..], revokedCanary["xp_canary-old_".Length..], wrongSecret["xp_canary_".Length..],
                unknownCanary["xp_canary-unknown_".Length..], ApiKeyFormat.HashText(canary)["sha256:".Length..],
                ApiKeyFormat.HashText(revokedCanary)["sha256:".Length..], jwtCanary, jwtCanary.Split('.')[2], goodJwt.Split('.')[2], "Bearer xp_", "Basic xp_", "Bearer ey",
            ];
            var hits = new List<string>();
            foreach (var record in logs)
            {
                var text = record.Message + " " + record.Exception + " "
                    + string.Join(" ", record.StructuredState?.Select(kv => kv.Key + "=" + kv.Value) ?? []);
                hits.AddRange(secrets.Where(s => text.Contains(s, StringComparison.Ordinal)).Select(s => $"log {record.Id.Name}: {s[..6]}…"));
            }

            foreach (var reply in replies)
            {
                // Everything we send back: immediate bodies and headers, mutations, dynamic metadata.
                var wire = reply.ToString();
                hits.AddRange(secrets.Where(s => wire.Contains(s, StringComparison.Ordinal)).Select(s => $"reply: {s[..6]}…"));
            }

            Assert.True(hits.Count == 0, string.Join("\n", hits));
            Assert.True(replies.Count > 40);
        }
        finally
        {
            File.Delete(config);
            File.Delete(jwks);
        }
    }
}
