<?php
/**
 * Formats shared with molam-agent: decision array, backup archive, maintenance flag.
 *
 * @package Molam_Form_Tests
 */

/**
 * The PHP side writes what the Python agent reads, and reads what the control plane answers.
 */
class ProtocolTest extends Molam_Form_TestCase {

	/**
	 * Run Python with the project's agent package; return decoded stdout.
	 *
	 * @param string $code  Python code.
	 * @param string $stdin Input.
	 * @return mixed
	 */
	private function python( $code, $stdin = '' ) {
		list( $status, $out, $err ) = self::run_python( $code, $stdin );
		$this->assertSame( 0, $status, $err );
		return json_decode( $out, true );
	}

	public function test_the_decision_has_the_seed_keys_for_a_selected_merchant() {
		$release = $this->build_release( '4.0.0' );
		$this->publish( $release, 100 );

		$decision = Molam_Form_Rollout::should_upgrade( getenv( 'MOLAM_TEST_MERCHANT' ), $this->plugin, '3.9.0' );

		$this->assertTrue( $decision['should_upgrade'] );
		$this->assertSame( '4.0.0', $decision['version'] );
		$this->assertSame( 'random', $decision['rollout_strategy'] );
		$this->assertEquals( 100, $decision['rollout_percentage'] );
		$this->assertNotEmpty( $decision['rollout_id'] );
		$this->assertStringContainsString( 'selected', strtolower( $decision['reason'] ) );
		$this->assertSame( $release['sha256'], $decision['release']['sha256'] );
		foreach ( array( 'should_upgrade', 'reason', 'rollout_id', 'rollout_percentage', 'rollout_strategy', 'version' ) as $key ) {
			$this->assertArrayHasKey( $key, $decision );
		}
	}

	public function test_a_merchant_outside_the_percentage_is_not_upgraded() {
		$this->publish( $this->build_release( '4.0.0' ), 0 );

		$result = $this->upgrade();

		$this->assertSame( 'skipped', $result['status'] );
		$this->assertNotEmpty( $result['reason'] );
		$this->assertWhollyOld();
		$this->assertSame( array(), $this->cp_upgrades() );
	}

	public function test_a_token_of_another_merchant_is_refused_and_nothing_changes() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->set_settings( array( 'token' => getenv( 'MOLAM_TEST_OTHER_TOKEN' ) ) );

		$result = $this->upgrade();

		$this->assertSame( 'failed', $result['status'] );
		$this->assertStringContainsString( 'refused this site\'s credential', $result['error'] );
		$this->assertWhollyOld();
	}

	public function test_the_backup_archive_is_readable_by_the_python_agent() {
		global $wpdb;
		$values = array();
		for ( $i = 41; $i <= 2500; $i++ ) {
			$values[] = $wpdb->prepare( '(%s, %d, %s, %s)', "ORD-$i", $i, 0 === $i % 7 ? 'paid' : 'pending', '2026-02-01 09:00:00' );
		}
		$wpdb->query( "INSERT INTO {$wpdb->prefix}molam_orders (merchant_ref, amount_cents, status, created_at) VALUES " . implode( ',', $values ) );
		$this->orders_before = $this->orders();
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 'success', $this->upgrade()['status'] );
		$archives = glob( Molam_Form_Settings::work_dir() . '/backups/*.mab' );
		$this->assertCount( 1, $archives );
		$this->assertMatchesRegularExpression( '/\/' . preg_quote( $this->plugin, '/' ) . '-3\.9\.0-\d{8}T\d{6}Z-[0-9a-f]{12}\.mab$/', $archives[0] );

		$code = 'import base64, io, json, sys, tarfile; from molam_agent.crypto import DecryptingReader; ' .
			'a = json.load(sys.stdin); ' .
			'tf = tarfile.open(fileobj=io.BufferedReader(DecryptingReader(open(a["path"], "rb"), base64.b64decode(a["key"]))), mode="r|"); ' .
			'out = {}; ' .
			'[out.__setitem__(m.name, tf.extractfile(m).read().decode()) for m in tf if m.isfile()]; ' .
			'print(json.dumps(out))';
		$members = $this->python( $code, wp_json_encode( array( 'path' => $archives[0], 'key' => base64_encode( Molam_Form_Backup::key() ) ) ) );

		$manifest = json_decode( $members['manifest.json'], true );
		$this->assertSame( 1, $manifest['format'] );
		$this->assertSame( '3.9.0', $manifest['version'] );
		$this->assertSame( 2500, $manifest['db']['tables'][0]['rows'], 'read in pages of 1,000, none missed or repeated' );
		$this->assertSame( (string) file_get_contents( self::fixture_dir() . '/molam-gateway.php' ), $members['files/molam-gateway.php'] );
		$rows = array_map( fn( $l ) => json_decode( $l, true ), array_filter( explode( "\n", $members['db/wp_molam_orders.jsonl'] ) ) );
		$this->assertSame( array_map( 'array_values', $this->orders_before ), $rows );
		$this->assertStringContainsString( 'molam_gateway_settings', $members['db/options.jsonl'] );
	}

	public function test_a_tampered_backup_archive_fails_authentication() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 'success', $this->upgrade()['status'] );
		$archive = glob( Molam_Form_Settings::work_dir() . '/backups/*.mab' )[0];
		$this->assertStringContainsString( 'manifest.json', Molam_Form_Backup::decrypt( $archive, Molam_Form_Backup::key() ) );
		$bytes       = (string) file_get_contents( $archive );
		$bytes[40]   = chr( ord( $bytes[40] ) ^ 1 );
		file_put_contents( $archive, $bytes );

		$this->expectExceptionMessage( 'failed authentication' );
		Molam_Form_Backup::decrypt( $archive, Molam_Form_Backup::key() );
	}

	public function test_the_maintenance_flag_is_the_agents_format_and_the_agent_agrees_it_is_active() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 9, $this->child( array(), array( 'MOLAM_FORM_FAULT' => 'maintenance_on' ) )['signal'] );
		$flag = json_decode( (string) file_get_contents( WP_PLUGIN_DIR . '/.molam-agent/molam-gateway/maintenance.json' ), true );

		$this->assertEqualsCanonicalizing( array( 'active', 'until', 'message', 'plugin', 'from_version', 'to_version', 'pid', 'started_at' ), array_keys( $flag ) );
		$this->assertSame( '0644', substr( sprintf( '%o', fileperms( Molam_Form_Store::flag_path() ) ), -4 ) );
		$this->assertTrue( $this->python( 'import json, sys; from pathlib import Path; from molam_agent.maintenance import is_active; print(json.dumps(is_active(Path(sys.stdin.read()))))', self::live_dir() ) );
		$this->assertFalse( Molam_Payment_Gateway::is_available(), 'checkout is paused' );
		$this->assertSame( 'success', $this->upgrade()['recovered']['rollback_status'] );
		$this->assertTrue( Molam_Payment_Gateway::is_available(), 'and open again after recovery' );
	}

	public function test_the_health_endpoint_answers_while_checkout_is_paused_and_fails_without_the_gateway() {
		Molam_Form_Store::maintenance_on( '3.9.0', '4.0.0' );
		$this->assertTrue( Molam_Form_Upgrade::test_payment_processing(), 'the health check is not blocked by the flag' );
		Molam_Form_Store::maintenance_off();

		$this->set_settings( array( 'gateway_class' => 'Missing_Gateway' ) );
		$this->assertSame( 'health URL answered HTTP 503', Molam_Form_Upgrade::smoke_test() );
		$this->set_settings( array( 'smoke_url' => getenv( 'MOLAM_TEST_WP_URL' ) . '/wp-admin/' ) );
		$this->assertSame( 'health URL answered HTTP 302', Molam_Form_Upgrade::smoke_test(), 'a redirect is not healthy' );
		$this->set_settings( array( 'smoke_url' => getenv( 'MOLAM_TEST_CP_URL' ) . 'rollouts' ) );
		$this->assertMatchesRegularExpression( '/HTTP 40[13]/', Molam_Form_Upgrade::smoke_test(), 'a 401/403 is not healthy' );
		$this->set_settings( array( 'smoke_url' => 'http://' . self::dead_address() . '/?molam-health=1' ) );
		$this->assertStringContainsString( 'health URL unreachable', Molam_Form_Upgrade::smoke_test(), 'a refused connection is not healthy' );
	}

	public function test_the_code_cache_flush_needs_the_one_time_token() {
		$response = wp_remote_get( getenv( 'MOLAM_TEST_WP_URL' ) . '/?molam-health=1&molam-flush=guess' );
		$this->assertSame( 403, wp_remote_retrieve_response_code( $response ) );
	}
}
