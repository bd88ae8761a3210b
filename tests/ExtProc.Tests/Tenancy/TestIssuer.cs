using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ExtProc.Tests.Tenancy;

/// <summary>A test OAuth issuer: RSA and EC signing keys made per run, their JWKS, and tokens.</summary>
internal sealed class TestIssuer : IDisposable
{
    public const string Issuer = "https://login.test/";
    public const string Audience = "https://gateway.test/mcp";

    private readonly RSA _rsa = RSA.Create(2048);
    private readonly ECDsa _ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public TestIssuer(string rsaKid = "rsa-1", string ecKid = "ec-1")
    {
        RsaKid = rsaKid;
        EcKid = ecKid;
        RsaKey = new RsaSecurityKey(_rsa) { KeyId = rsaKid };
        EcKey = new ECDsaSecurityKey(_ec) { KeyId = ecKid };
    }

    public string RsaKid { get; }

    public string EcKid { get; }

    public RsaSecurityKey RsaKey { get; }

    public ECDsaSecurityKey EcKey { get; }

    /// <summary>The public JWKS document (no private parts).</summary>
    public string Jwks(bool includeEc = true)
    {
        var rsa = _rsa.ExportParameters(false);
        var builder = new StringBuilder("{\"keys\":[");
        builder.Append($"{{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"{RsaKid}\",\"n\":\"{Base64UrlEncoder.Encode(rsa.Modulus)}\",\"e\":\"{Base64UrlEncoder.Encode(rsa.Exponent)}\"}}");
        if (includeEc)
        {
            var ec = _ec.ExportParameters(false);
            builder.Append($",{{\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"kid\":\"{EcKid}\",\"x\":\"{Base64UrlEncoder.Encode(ec.Q.X)}\",\"y\":\"{Base64UrlEncoder.Encode(ec.Q.Y)}\"}}");
        }

        // A symmetric key in a public set must never be usable for verification.
        builder.Append(",{\"kty\":\"oct\",\"kid\":\"oct-1\",\"k\":\"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\"}");
        builder.Append("]}");
        return builder.ToString();
    }

    public string Token(
        string? tenant = "acme",
        string audience = Audience,
        string issuer = Issuer,
        DateTime? expires = null,
        DateTime? notBefore = null,
        SigningCredentials? credentials = null,
        IDictionary<string, object>? extraClaims = null)
    {
        var now = DateTime.UtcNow;
        var claims = new Dictionary<string, object> { ["sub"] = "user-1" };
        if (tenant is not null)
        {
            claims["tenant"] = tenant;
        }

        foreach (var (k, v) in extraClaims ?? new Dictionary<string, object>())
        {
            claims[k] = v;
        }

        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Claims = claims,
            IssuedAt = (notBefore ?? now.AddMinutes(-1)).AddSeconds(-1),
            NotBefore = notBefore ?? now.AddMinutes(-1),
            Expires = expires ?? now.AddMinutes(10),
            SigningCredentials = credentials ?? new SigningCredentials(RsaKey, SecurityAlgorithms.RsaSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    public string EcToken(string tenant = "acme") => Token(tenant, credentials: new SigningCredentials(EcKey, SecurityAlgorithms.EcdsaSha256));

    /// <summary>An unsigned token (alg none) with otherwise valid claims.</summary>
    public static string AlgNone(string tenant = "acme")
    {
        var exp = DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeSeconds();
        var header = Base64UrlEncoder.Encode("{\"alg\":\"none\",\"typ\":\"JWT\"}");
        var payload = Base64UrlEncoder.Encode($"{{\"iss\":\"{Issuer}\",\"aud\":\"{Audience}\",\"sub\":\"x\",\"tenant\":\"{tenant}\",\"exp\":{exp}}}");
        return header + "." + payload + ".";
    }

    /// <summary>HS256 signed with the RSA public key bytes as the HMAC secret, kid of the RSA key (the classic confusion).</summary>
    public string HmacWithPublicKey()
    {
        var secret = _rsa.ExportSubjectPublicKeyInfo();
        var key = new SymmetricSecurityKey(secret) { KeyId = RsaKid };
        return Token(credentials: new SigningCredentials(key, SecurityAlgorithms.HmacSha256));
    }

    public string IdentityYaml(string jwks, string tenantLine = "tenantClaim: tenant") => $$"""
        identity:
          jwt:
            issuers:
              - issuer: "{{Issuer}}"
                audiences: ["{{Audience}}"]
                algorithms: [RS256, ES256]
                clockSkew: 30s
                {{tenantLine}}
                jwks:
                  {{jwks}}
                  minRefreshInterval: 30s
          protectedResources:
            - path: /mcp
              resource: "{{Audience}}"
              authorizationServers: ["{{Issuer}}"]
              scopesSupported: ["mcp:tools"]
        """;

    public void Dispose()
    {
        _rsa.Dispose();
        _ec.Dispose();
    }
}

/// <summary>Serves a JWKS over "HTTPS" in memory and counts fetches.</summary>
internal sealed class JwksHandler : HttpMessageHandler
{
    private int _fetches;

    public Func<string>? Document { get; set; }

    public bool Fail { get; set; }

    public int Fetches => Volatile.Read(ref _fetches);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _fetches);
        if (Fail || Document is null)
        {
            return Task.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable));
        }

        return Task.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.OK)
        {
            Content = new StringContent(Document(), Encoding.UTF8, "application/json"),
        });
    }
}
