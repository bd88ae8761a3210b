namespace ExtProc.Tenancy;

/// <summary>
/// Glob patterns for model and tool names: <c>*</c> matches any run of characters (also none),
/// <c>?</c> exactly one; everything else matches itself, ordinal and case-sensitive (a decision is
/// made on the exact name the upstream will read).
/// </summary>
internal static class Glob
{
    public static bool IsPattern(string value) => value.AsSpan().IndexOfAny('*', '?') >= 0;

    public static bool IsMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        // Iterative matcher with single backtrack point: linear in practice, no recursion.
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t]))
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }

    public static bool MatchesAny(IReadOnlyList<string> patterns, ReadOnlySpan<char> text)
    {
        for (var i = 0; i < patterns.Count; i++)
        {
            if (IsMatch(patterns[i], text))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// True when every name <paramref name="inner"/> matches is also matched by <paramref name="outer"/>.
    /// Conservative (sound, not complete): "*", equal patterns, a literal inner name, and a
    /// "prefix*" outer over an inner that starts with the same literal prefix.
    /// </summary>
    public static bool Covers(string outer, string inner)
    {
        if (outer == "*" || string.Equals(outer, inner, StringComparison.Ordinal))
        {
            return true;
        }

        if (!IsPattern(inner))
        {
            return IsMatch(outer, inner);
        }

        var firstWildcard = outer.AsSpan().IndexOfAny('*', '?');
        if (firstWildcard == outer.Length - 1 && outer[^1] == '*')
        {
            var prefix = outer.AsSpan(0, firstWildcard);
            var innerLiteral = inner.AsSpan(0, inner.AsSpan().IndexOfAny('*', '?'));
            return innerLiteral.StartsWith(prefix, StringComparison.Ordinal);
        }

        return false;
    }

    /// <summary>True when some pattern of <paramref name="outer"/> covers <paramref name="inner"/>.</summary>
    public static bool AnyCovers(IReadOnlyList<string> outer, string inner)
    {
        for (var i = 0; i < outer.Count; i++)
        {
            if (Covers(outer[i], inner))
            {
                return true;
            }
        }

        return false;
    }
}
