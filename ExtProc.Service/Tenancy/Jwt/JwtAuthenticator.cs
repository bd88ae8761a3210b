using System.Collections.Frozen;
using System.Text;
using ExtProc.Observability;
using ExtProc.Tenancy.Config;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ExtProc.Tenancy.Jwt;

/// <summary>Why a bearer token was refused; the client sees only a generic message.</summary>
internal enum JwtFailure
{
    None,
    Malformed,
    TooLarge,
    UnknownIssuer,
    AlgorithmNotAllowed,
    UnknownKey,
    KeysUnavailable,
    Invalid,
    Expired,
    WrongAudience,
    NoTenant,
    UnknownTenant,
    InvalidTenantValue,
}

internal readonly record struct JwtOutcome(JwtFailure Failure, Tenant? Tenant, string? Subject, string? Detail = null)
{
    public bool Ok => Failure == JwtFailure.None;
}

/// <summary>
/// OAuth 2 resource-server validation of bearer JWTs: signature with the issuer's JWKS keys, the
/// allowed (asymmetric) algorithms only, issuer, audience, expiry and not-before with a small skew;
/// then one claim (or the issuer itself) names the tenant.
/// </summary>
internal sealed class JwtAuthenticator
{
    private static readonly JsonWebTokenHandler Handler = new() { MapInboundClaims = false };

    private readonly FrozenDictionary<string, Issuer> _issuers;
    private readonly FrozenDictionary<string, Tenant> _tenants;
    private readonly ILogger _logger;

    public JwtAuthenticator(IReadOnlyList<JwtIssuerConfig> issuers, FrozenDictionary<string, Tenant> tenants, JwksRegistry registry, ILogger logger, ConfigErrors errors)
    {
        _tenants = tenants;
        _logger = logger;
        var map = new Dictionary<string, Issuer>(StringComparer.Ordinal);
        for (var i = 0; i < issuers.Count; i++)
        {
            var config = issuers[i];
            var cache = registry.Get(config.Jwks);
            if (config.Jwks.File is not null && !cache.TryLoadFile(out var error))
            {
                errors.Add($"identity.jwt.issuers[{i}].jwks.file", $"cannot load the key set '{config.Jwks.File}': {error}");
            }
            else if (config.Jwks.Url is not null && cache.Current.Keys.Count == 0)
            {
                // Fetch now so the first request does not wait; failures are logged and retried.
                _ = cache.GetAsync().AsTask();
            }

            map[config.Issuer] = new Issuer(config, cache);
            MaxTokenBytes = Math.Max(MaxTokenBytes, config.MaxTokenBytes);
        }

        _issuers = map.ToFrozenDictionary(StringComparer.Ordinal);
    }

    public bool Enabled => _issuers.Count > 0;

    public int MaxTokenBytes { get; }

    /// <summary>True when the token is shaped like a JWS compact serialization (three dot-separated parts).</summary>
    public static bool LooksLikeJwt(ReadOnlySpan<byte> token) => token.Count((byte)'.') == 2 && token.StartsWith("eyJ"u8);

    /// <param name="routeResource">On a route of a configured protected resource, the token must be issued for
    /// exactly that resource (RFC 8707), not merely for any audience of its issuer.</param>
    public async ValueTask<JwtOutcome> AuthenticateAsync(ReadOnlyMemory<byte> tokenBytes, string? routeResource = null)
    {
        if (tokenBytes.Length > MaxTokenBytes)
        {
            return new(JwtFailure.TooLarge, null, null);
        }

        var token = Encoding.ASCII.GetString(tokenBytes.Span);
        JsonWebToken jwt;
        try
        {
            jwt = new JsonWebToken(token);
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or FormatException)
        {
            return new(JwtFailure.Malformed, null, null);
        }

        string? issuerName;
        try
        {
            issuerName = jwt.Issuer;
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or FormatException)
        {
            return new(JwtFailure.Malformed, null, null);
        }

        if (string.IsNullOrEmpty(issuerName) || !_issuers.TryGetValue(issuerName, out var issuer))
        {
            return new(JwtFailure.UnknownIssuer, null, null);
        }

        var config = issuer.Config;
        if (tokenBytes.Length > config.MaxTokenBytes)
        {
            return new(JwtFailure.TooLarge, null, null);
        }

        if (!Contains(config.Algorithms, jwt.Alg))
        {
            return new(JwtFailure.AlgorithmNotAllowed, null, null, jwt.Alg);
        }

        var keys = await issuer.Keys.GetAsync().ConfigureAwait(false);
        var kid = jwt.Kid;
        if (!string.IsNullOrEmpty(kid) && keys.Keys.Count > 0 && !keys.KeyIds.Contains(kid))
        {
            keys = await issuer.Keys.RefreshForUnknownKeyAsync().ConfigureAwait(false);
            if (!keys.KeyIds.Contains(kid))
            {
                return new(JwtFailure.UnknownKey, null, null);
            }
        }

        if (keys.Keys.Count == 0)
        {
            // The issuer's keys could not be fetched: the token may be fine, we cannot tell (503, not 401).
            return new(JwtFailure.KeysUnavailable, null, null);
        }

        var parameters = new TokenValidationParameters
        {
            ValidIssuer = config.Issuer,
            ValidateIssuer = true,
            ValidAudiences = config.Audiences,
            ValidateAudience = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = config.ClockSkew,
            ValidAlgorithms = config.Algorithms,
            IssuerSigningKeys = keys.Keys,
            ValidateIssuerSigningKey = false,
            TryAllIssuerSigningKeys = string.IsNullOrEmpty(kid),
            SaveSigninToken = false,
        };
        var result = await Handler.ValidateTokenAsync(jwt, parameters).ConfigureAwait(false);
        if (!result.IsValid)
        {
            var failure = result.Exception switch
            {
                SecurityTokenExpiredException => JwtFailure.Expired,
                SecurityTokenNotYetValidException => JwtFailure.Expired,
                SecurityTokenInvalidAudienceException => JwtFailure.WrongAudience,
                _ => JwtFailure.Invalid,
            };
            return new(failure, null, null, result.Exception?.GetType().Name);
        }

        if (routeResource is not null && !HasAudience(jwt, routeResource))
        {
            return new(JwtFailure.WrongAudience, null, null, "audience is not this route's resource");
        }

        string? subject = jwt.TryGetPayloadValue<string>("sub", out var sub) ? sub : null;
        if (config.Tenant is { } fixedTenant)
        {
            return new(JwtFailure.None, _tenants[fixedTenant], subject);
        }

        if (!jwt.TryGetPayloadValue<string>(config.TenantClaim!, out var claimed) || string.IsNullOrEmpty(claimed))
        {
            return new(JwtFailure.NoTenant, null, subject);
        }

        if (TenancyConfigParser.HasControl(claimed))
        {
            TenancyLog.InvalidIdentityValue(_logger, "jwt claim " + config.TenantClaim, Escape(claimed));
            return new(JwtFailure.InvalidTenantValue, null, subject);
        }

        return _tenants.TryGetValue(claimed, out var tenant)
            ? new(JwtFailure.None, tenant, subject)
            : new(JwtFailure.UnknownTenant, null, subject);
    }

    /// <summary>Makes a value safe for one log line: control characters become \uXXXX, length capped.</summary>
    internal static string Escape(string value)
    {
        var builder = new StringBuilder(Math.Min(value.Length, 128) + 8);
        for (var i = 0; i < value.Length && i < 128; i++)
        {
            var c = value[i];
            if (char.IsControl(c))
            {
                builder.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    private static bool HasAudience(JsonWebToken jwt, string resource)
    {
        foreach (var audience in jwt.Audiences)
        {
            if (string.Equals(audience, resource, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Contains(IReadOnlyList<string> list, string? value)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (string.Equals(list[i], value, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private sealed record Issuer(JwtIssuerConfig Config, JwksCache Keys);
}
