using System.Text.Json;
using Envoy.Service.ExtProc.V3;
using ExtProc.Tenancy.Jwt;
using ExtProc.Tests.Tenancy;
using Microsoft.Extensions.Logging.Abstractions;
using static ExtProc.Tests.Engine.EngineTestKit;
using static ExtProc.Tests.Stages.Auth.AuthenticationStageTests;
using static ExtProc.Tests.Tenancy.TestTenancy;

namespace ExtProc.Tests.Stages.Auth;

/// <summary>OAuth resource-server validation of bearer JWTs and the MCP discovery answers (faults.md A6, P12; mcp.md §7).</summary>
public sealed class JwtAuthenticationTests : IDisposable
{
    private readonly TestIssuer _issuer = new();
    private readonly string _jwksFile = Path.Combine(Path.GetTempPath(), $"jwks-{Guid.NewGuid():N}.json");
    private readonly global::ExtProc.Pipeline.PipelineSnapshot _snapshot;

    public JwtAuthenticationTests()
    {
        File.WriteAllText(_jwksFile, _issuer.Jwks());
        _snapshot = BuildPipeline(BaseYaml(_issuer.IdentityYaml($"file: \"{_jwksFile}\"")));
    }

    [Fact]
    public async Task ValidRsaToken_TenantFromClaim_AuthorizationRemovedBeforeUpstream()
    {
        var reply = await HeadersAsync(_snapshot, "/mcp", extra: ("authorization", "Bearer " + _issuer.Token()));

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
        var mutation = reply.RequestHeaders.Response.HeaderMutation;
        Assert.Contains("authorization", mutation.RemoveHeaders);
        Assert.Equal("acme", Header(mutation, "x-extproc-tenant"));
        var metadata = reply.DynamicMetadata.Fields["extproc"].StructValue.Fields;
        Assert.Equal("jwt", metadata["identity"].StringValue);
        Assert.False(metadata.ContainsKey("key_id"));
    }

    [Fact]
    public async Task ValidEcToken_Accepted()
    {
        var reply = await HeadersAsync(_snapshot, "/v1/chat/completions", extra: ("authorization", "Bearer " + _issuer.EcToken("beta")));

        Assert.Equal("beta", Header(reply.RequestHeaders.Response.HeaderMutation, "x-extproc-tenant"));
    }

    public static TheoryData<string> Attacks => new()
    {
        "alg-none", "hs-rs-confusion", "wrong-aud", "wrong-iss", "expired", "future-nbf", "unknown-kid", "oversized", "bad-signature", "oct-kid", "no-exp",
    };

    [Theory]
    [MemberData(nameof(Attacks))]
    public async Task A6_TokenAttacks_401InvalidTokenWithChallengeAndNeverForwarded(string attack)
    {
        using var other = new TestIssuer(rsaKid: "rsa-1");
        var token = attack switch
        {
            "alg-none" => TestIssuer.AlgNone(),
            "hs-rs-confusion" => _issuer.HmacWithPublicKey(),
            "wrong-aud" => _issuer.Token(audience: "https://api.openai.com"),
            "wrong-iss" => _issuer.Token(issuer: "https://evil.test/"),
            "expired" => _issuer.Token(expires: DateTime.UtcNow.AddMinutes(-5), notBefore: DateTime.UtcNow.AddMinutes(-20)),
            "future-nbf" => _issuer.Token(notBefore: DateTime.UtcNow.AddMinutes(5), expires: DateTime.UtcNow.AddMinutes(20)),
            "unknown-kid" => new TestIssuer(rsaKid: "rsa-unknown").Token(),
            "oversized" => _issuer.Token(extraClaims: new Dictionary<string, object> { ["pad"] = new string('x', 10_000) }),
            "bad-signature" => other.Token(), // same kid, another key
            "oct-kid" => _issuer.Token(credentials: new Microsoft.IdentityModel.Tokens.SigningCredentials(
                new Microsoft.IdentityModel.Tokens.SymmetricSecurityKey(Convert.FromBase64String("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==")) { KeyId = "oct-1" }, "HS256")),
            "no-exp" => NoExpiry(),
            _ => throw new ArgumentOutOfRangeException(nameof(attack)),
        };

        var reply = await HeadersAsync(_snapshot, "/mcp", extra: ("authorization", "Bearer " + token));

        Assert.Equal(ProcessingResponse.ResponseOneofCase.ImmediateResponse, reply.ResponseCase);
        Assert.Equal(401, (int)reply.ImmediateResponse.Status.Code);
        using var json = JsonDocument.Parse(reply.ImmediateResponse.Body.Memory);
        Assert.Equal("invalid_token", json.RootElement.GetProperty("error").GetProperty("data").GetProperty("code").GetString());
        Assert.Equal("Bearer error=\"invalid_token\", resource_metadata=\"https://gateway.test/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\"",
            Header(reply.ImmediateResponse.Headers, "www-authenticate"));
    }

    private string NoExpiry()
    {
        var handler = new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false };
        return handler.CreateToken(new Microsoft.IdentityModel.Tokens.SecurityTokenDescriptor
        {
            Issuer = TestIssuer.Issuer,
            Audience = TestIssuer.Audience,
            Claims = new Dictionary<string, object> { ["tenant"] = "acme" },
            SigningCredentials = new Microsoft.IdentityModel.Tokens.SigningCredentials(_issuer.RsaKey, "RS256"),
        });
    }

    [Fact]
    public async Task McpRoute_TokenForAnotherConfiguredAudience_401_SameTokenAcceptedOnLlmRoute()
    {
        // The issuer may serve several resources; on a protected-resource route only that resource counts.
        var yaml = BaseYaml(_issuer.IdentityYaml($"file: \"{_jwksFile}\"")).Replace(
            $"audiences: [\"{TestIssuer.Audience}\"]", $"audiences: [\"{TestIssuer.Audience}\", \"https://gateway.test/llm\"]", StringComparison.Ordinal);
        var snapshot = BuildPipeline(yaml);
        var token = _issuer.Token(audience: "https://gateway.test/llm");

        var mcp = await HeadersAsync(snapshot, "/mcp", extra: ("authorization", "Bearer " + token));
        var llm = await HeadersAsync(snapshot, "/v1/chat/completions", extra: ("authorization", "Bearer " + token));

        Assert.Equal(401, (int)mcp.ImmediateResponse.Status.Code);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, llm.ResponseCase);
    }

    [Fact]
    public async Task McpRoute_NoToken_401WithResourceMetadataChallenge()
    {
        var reply = await HeadersAsync(_snapshot, "/mcp");

        Assert.Equal(401, (int)reply.ImmediateResponse.Status.Code);
        Assert.Equal("Bearer resource_metadata=\"https://gateway.test/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\"",
            Header(reply.ImmediateResponse.Headers, "www-authenticate"));
    }

    [Theory]
    [InlineData("/.well-known/oauth-protected-resource/mcp")]
    [InlineData("/.well-known/oauth-protected-resource")]
    [InlineData("/.well-known/OAUTH-protected-resource/mcp/")]
    public async Task ProtectedResourceMetadata_AnsweredByExtProcFromConfig(string path)
    {
        var reply = await HeadersAsync(_snapshot, path, method: "GET");

        var immediate = reply.ImmediateResponse;
        Assert.Equal(200, (int)immediate.Status.Code);
        Assert.Equal("application/json", Header(immediate.Headers, "content-type"));
        using var json = JsonDocument.Parse(immediate.Body.Memory);
        Assert.Equal("https://gateway.test/mcp", json.RootElement.GetProperty("resource").GetString());
        Assert.Equal(TestIssuer.Issuer, json.RootElement.GetProperty("authorization_servers")[0].GetString());
        Assert.Equal("mcp:tools", json.RootElement.GetProperty("scopes_supported")[0].GetString());
    }

    [Fact]
    public async Task ProtectedResourceMetadata_OtherWellKnownPath_NotAnswered()
    {
        var reply = await HeadersAsync(_snapshot, "/.well-known/oauth-protected-resource/other", method: "GET");

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, reply.ResponseCase);
    }

    [Fact]
    public async Task P12_TenantClaimWithCrLf_400InvalidIdentityValueNeverEmitted()
    {
        var reply = await HeadersAsync(_snapshot, "/v1/chat/completions", extra: ("authorization", "Bearer " + _issuer.Token(tenant: "acme\r\nx-admin: 1")));

        AssertError(reply, 400, "invalid_identity_value");
        Assert.DoesNotContain("x-admin", reply.ToString());
    }

    [Fact]
    public async Task TenantClaimNamingUnknownTenant_403UnknownTenant()
    {
        var reply = await HeadersAsync(_snapshot, "/v1/chat/completions", extra: ("authorization", "Bearer " + _issuer.Token(tenant: "gamma")));

        AssertError(reply, 403, "unknown_tenant");
    }

    [Fact]
    public async Task TokenWithoutTenantClaim_401InvalidToken()
    {
        var reply = await HeadersAsync(_snapshot, "/v1/chat/completions", extra: ("authorization", "Bearer " + _issuer.Token(tenant: null)));

        AssertError(reply, 401, "invalid_token");
    }

    [Fact]
    public async Task FixedTenantIssuer_EveryTokenIsThatTenant()
    {
        var snapshot = BuildPipeline(BaseYaml(_issuer.IdentityYaml($"file: \"{_jwksFile}\"", "tenant: beta")));

        var reply = await HeadersAsync(snapshot, "/mcp", extra: ("authorization", "Bearer " + _issuer.Token(tenant: "acme")));

        Assert.Equal("beta", Header(reply.RequestHeaders.Response.HeaderMutation, "x-extproc-tenant"));
    }

    [Fact]
    public async Task JwtAndApiKeyTogether_400Ambiguous()
    {
        var reply = await HeadersAsync(_snapshot, "/v1/messages", extra: [("authorization", "Bearer " + _issuer.Token()), ("x-api-key", AcmeKey)]);

        AssertError(reply, 400, "ambiguous_credentials", anthropic: true);
    }

    [Fact]
    public async Task JwksUrl_UnknownKid_OneRefreshThenRateLimited()
    {
        using var handler = new JwksHandler();
        using var rotated = new TestIssuer(rsaKid: "rsa-2", ecKid: "ec-2");
        var document = _issuer.Jwks();
        handler.Document = () => document;
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        using var registry = new JwksRegistry(time, NullLogger.Instance, handler);
        var snapshot = BuildPipeline(BaseYaml(_issuer.IdentityYaml("url: \"https://login.test/jwks\"")), jwks: registry);

        var first = await HeadersAsync(snapshot, "/mcp", extra: ("authorization", "Bearer " + _issuer.Token()));
        var fetchesAfterFirst = handler.Fetches;
        time.Advance(TimeSpan.FromSeconds(31)); // past minRefreshInterval

        // The issuer rotates: a token with a new kid triggers one refresh, which finds it.
        document = rotated.Jwks();
        var rotatedReply = await HeadersAsync(snapshot, "/mcp", extra: ("authorization", "Bearer " + rotated.Token()));
        var fetchesAfterRotation = handler.Fetches;

        // Unknown kids right after a refresh do not fetch again (min refresh interval).
        using var stranger = new TestIssuer(rsaKid: "rsa-9");
        for (var i = 0; i < 20; i++)
        {
            var denied = await HeadersAsync(snapshot, "/mcp", extra: ("authorization", "Bearer " + stranger.Token()));
            Assert.Equal(401, (int)denied.ImmediateResponse.Status.Code);
        }

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, first.ResponseCase);
        Assert.Equal(1, fetchesAfterFirst);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, rotatedReply.ResponseCase);
        Assert.Equal(2, fetchesAfterRotation);
        Assert.Equal(2, handler.Fetches);
    }

    [Fact]
    public async Task A5_JwksUnreachable_503AuthUnavailableWithRetryAfterNeverAccepted()
    {
        using var handler = new JwksHandler { Fail = true };
        using var registry = new JwksRegistry(TimeProvider.System, NullLogger.Instance, handler);
        var snapshot = BuildPipeline(BaseYaml(_issuer.IdentityYaml("url: \"https://login.test/jwks\"")), jwks: registry);

        var reply = await HeadersAsync(snapshot, "/v1/chat/completions", extra: ("authorization", "Bearer " + _issuer.Token()));

        AssertError(reply, 503, "auth_unavailable");
        Assert.Equal("5", Header(reply.ImmediateResponse.Headers, "retry-after"));
    }

    [Fact]
    public void Config_HmacOrNoneAlgorithm_Refused()
    {
        var errors = new global::ExtProc.Tenancy.Config.ConfigErrors();
        var yaml = BaseYaml(_issuer.IdentityYaml($"file: \"{_jwksFile}\"")).Replace("algorithms: [RS256, ES256]", "algorithms: [RS256, HS256, none]", StringComparison.Ordinal);

        Assert.Null(global::ExtProc.Tenancy.Config.TenancyConfigParser.Parse(yaml, errors));
        Assert.Equal(2, errors.All.Count(e => e.Contains("identity.jwt.issuers[0].algorithms", StringComparison.Ordinal)));
    }

    public void Dispose()
    {
        _issuer.Dispose();
        File.Delete(_jwksFile);
    }
}
