using System.Text;
using System.Text.Json;
using Envoy.Service.ExtProc.V3;
using ExtProc.Tests.Tenancy;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using static ExtProc.Tests.Engine.EngineTestKit;
using static ExtProc.Tests.Tenancy.TestTenancy;

namespace ExtProc.Tests.Stages.Auth;

/// <summary>
/// Random credential headers, duplicates, look-alikes, junk bytes, JWT-shaped garbage, XFCC and peer
/// attributes, against the identity pipeline: no exception, every refusal a well-formed error, and a
/// request is accepted only as the tenant of a valid credential it carries (never by accident).
/// </summary>
public sealed class AuthFuzzTests
{
    private static readonly string[] Names =
        ["authorization", "x-api-key", "api-key", "x-goog-api-key", "x_api_key", "api_key", "x-extproc-tenant", "x-forwarded-client-cert", "cookie", "proxy-authorization"];

    [Fact]
    public async Task RandomCredentialHeaders_NeverThrowNeverMisattribute()
    {
        using var issuer = new TestIssuer();
        var jwks = Path.Combine(Path.GetTempPath(), $"fuzz-jwks-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(jwks, issuer.Jwks());
        try
        {
            var mtls = "\n  mtls:\n    peers:\n      - spiffePrefix: \"spiffe://mesh.test/ns/beta/\"\n        tenant: beta\n";
            var snapshot = BuildPipeline(BaseYaml(issuer.IdentityYaml($"file: \"{jwks}\"") + mtls));
            var validJwt = issuer.Token(tenant: "beta");
            string[] values =
            [
                AcmeKey, "Bearer " + AcmeKey, "bearer " + BetaKey, BetaKey, AcmeRevokedKey, "Bearer " + AcmeRevokedKey, "Bearer " + validJwt,
                "Bearer " + TestIssuer.AlgNone(), "Bearer eyJ.eyJ.x", "Bearer ", "Basic Zm9vOmJhcg==", "xp_acme-main_", "xp__x", "xp_acme-main_\u0000",
                "Bearer " + AcmeKey + "\r\nx: y", "acme", "", "\u00e9\u00e8", "Bearer " + new string('a', 9000),
            ];
            var random = new Random(1234);
            var accepted = 0;
            for (var i = 0; i < 3000; i++)
            {
                var headers = new List<(string, string)>();
                var count = random.Next(0, 4);
                for (var h = 0; h < count; h++)
                {
                    headers.Add((Names[random.Next(Names.Length)], values[random.Next(values.Length)]));
                }

                var (processor, writer) = Processor(snapshot);
                var path = random.Next(4) switch { 0 => "/v1/chat/completions", 1 => "/v1/messages", 2 => "/mcp", _ => "/v1beta/models/gemini-2.0-flash:generateContent" };
                var message = RequestHeaders(path, extra: [.. headers]);
                string? peer = null;
                if (random.Next(3) == 0)
                {
                    peer = random.Next(3) switch
                    {
                        0 => "spiffe://mesh.test/ns/beta/sa/x",
                        1 => "spiffe://mesh.test/ns/beta/sa/\u0000",
                        _ => "spiffe://other/ns/x",
                    };
                    var attributes = new Struct();
                    attributes.Fields["connection.uri_san_peer_certificate"] = Value.ForString(peer);
                    message.Attributes["envoy.filters.http.ext_proc"] = attributes;
                }

                if (random.Next(10) == 0)
                {
                    // Raw non-UTF-8 bytes in a credential header.
                    message.RequestHeaders.Headers.Headers.Add(new global::Envoy.Config.Core.V3.HeaderValue
                    {
                        Key = "x-api-key",
                        RawValue = ByteString.CopyFrom(0xff, 0xfe, 0x00, 0x41),
                    });
                }

                await processor.HandleAsync(message);
                var reply = Assert.Single(writer.Responses);
                if (reply.ResponseCase == ProcessingResponse.ResponseOneofCase.ImmediateResponse)
                {
                    var status = (int)reply.ImmediateResponse.Status.Code;
                    Assert.InRange(status, 400, 503);
                    using var json = JsonDocument.Parse(reply.ImmediateResponse.Body.Memory);
                    continue;
                }

                accepted++;
                var tenant = reply.DynamicMetadata.Fields["extproc"].StructValue.Fields["tenant"].StringValue;
                // Exactly the clean forms of a valid credential, in an accepted header, count.
                var credentials = headers.Where(h => h.Item1 is "authorization" or "x-api-key" or "api-key" or "x-goog-api-key")
                    .Select(h => h.Item1 == "authorization" && h.Item2.Length > 7 ? h.Item2[7..] : h.Item2).ToHashSet();
                var presented = string.Join("\n", headers.Select(h => h.Item1 + ": " + h.Item2));
                var legitimate = tenant switch
                {
                    "acme" => credentials.SetEquals([AcmeKey]),
                    "beta" => credentials.SetEquals([BetaKey]) || credentials.SetEquals([validJwt])
                        || (credentials.Count == 0 && peer == "spiffe://mesh.test/ns/beta/sa/x"),
                    _ => false,
                };
                Assert.True(legitimate, $"case {i}: accepted as {tenant} with {presented}");
                var mutation = reply.RequestHeaders.Response.HeaderMutation;
                Assert.Equal(tenant, Encoding.UTF8.GetString(mutation.SetHeaders.Single(s => s.Header.Key == "x-extproc-tenant").Header.RawValue.Span));
                Assert.DoesNotContain(mutation.SetHeaders, s => s.Header.Key is "authorization" or "x-api-key" or "api-key" or "x-goog-api-key");
            }

            Assert.InRange(accepted, 1, 2999);
        }
        finally
        {
            File.Delete(jwks);
        }
    }
}
