namespace ExtProc.Translation.Common;

/// <summary>Splits a <c>data:&lt;mime&gt;;base64,&lt;data&gt;</c> URI (the form OpenAI clients use for inline images and files).</summary>
internal static class DataUri
{
    public static bool TryParse(ReadOnlySpan<byte> uri, out ReadOnlySpan<byte> mediaType, out ReadOnlySpan<byte> base64)
    {
        mediaType = default;
        base64 = default;
        if (!uri.StartsWith("data:"u8))
        {
            return false;
        }

        var comma = uri.IndexOf((byte)',');
        if (comma < 0)
        {
            return false;
        }

        var header = uri[5..comma];
        if (!header.EndsWith(";base64"u8))
        {
            return false;
        }

        mediaType = header[..^7];
        var parameters = mediaType.IndexOf((byte)';');
        if (parameters >= 0)
        {
            mediaType = mediaType[..parameters];
        }

        base64 = uri[(comma + 1)..];
        return true;
    }

    public static bool IsAnthropicImage(ReadOnlySpan<byte> mediaType) =>
        mediaType.SequenceEqual("image/jpeg"u8) || mediaType.SequenceEqual("image/png"u8)
        || mediaType.SequenceEqual("image/gif"u8) || mediaType.SequenceEqual("image/webp"u8);

    /// <summary>A MIME type guessed from a URL's extension (Gemini's fileData needs one); jpeg when unknown.</summary>
    public static ReadOnlySpan<byte> GuessMediaType(ReadOnlySpan<byte> url)
    {
        var query = url.IndexOfAny((byte)'?', (byte)'#');
        if (query >= 0)
        {
            url = url[..query];
        }

        if (url.EndsWith(".png"u8))
        {
            return "image/png"u8;
        }

        if (url.EndsWith(".gif"u8))
        {
            return "image/gif"u8;
        }

        if (url.EndsWith(".webp"u8))
        {
            return "image/webp"u8;
        }

        return url.EndsWith(".pdf"u8) ? "application/pdf"u8 : "image/jpeg"u8;
    }
}
